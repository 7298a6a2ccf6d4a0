"""Tests of shared.outcomes."""
