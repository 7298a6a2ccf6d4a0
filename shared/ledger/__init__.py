"""The request ledger: records and states (pure), the Table store, tracking steps, the HTTP API service."""
