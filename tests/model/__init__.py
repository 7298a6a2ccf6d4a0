"""Model-based tests: the real services against an in-memory world (tests/model/world.py)."""
