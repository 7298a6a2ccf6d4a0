"""Tests of shared.cost."""
