"""What the functions call: dispatch, reconcile, deadletter, the idle timer, and the composition root."""
