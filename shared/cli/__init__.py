"""The operator's CLI (python -m shared.cli); the only package that imports rich."""
