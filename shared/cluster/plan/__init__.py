"""The bootstrap, as values (pure): steps and decisions, then one module per step family."""
