"""Services: dispatch, deadletter, reconcile, schedule, bootstrap; they call adapters."""
