"""Periodic batches: the definitions file, due slots (pure) and their enqueueing."""
