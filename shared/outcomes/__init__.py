"""How a request ended: the outcome of a Job, provider failures, CloudEvents (pure)."""
