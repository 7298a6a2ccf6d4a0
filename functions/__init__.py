"""One Blueprint per trigger. Each function decodes its binding, calls one service in
``shared``, and maps the outcome back onto the host (outputs, completion, or an exception
that makes the host retry)."""
