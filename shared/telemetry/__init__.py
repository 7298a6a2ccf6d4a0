"""Telemetry (issue 21): OpenTelemetry metrics and one trace per request.

* :mod:`shared.telemetry.names` — every instrument and attribute the app emits (the contract the
  alerts and the workbook query by name; docs/operations.md "Telemetry" is its table).
* :mod:`shared.telemetry.tracecontext` — W3C Trace Context ``traceparent`` parsing (pure).
* :mod:`shared.telemetry.signals` — the recorder the flows call. Until :func:`signals.enable`
  is called (``shared.adapters.telemetry.configure``, VNB_TELEMETRY not ``off``) every call
  returns at once and ``opentelemetry`` is not even imported: the queue-trigger cold path pays
  nothing for telemetry that is off.
* :mod:`shared.telemetry.logs` — a logging filter putting the request key and trace id on records.
"""
