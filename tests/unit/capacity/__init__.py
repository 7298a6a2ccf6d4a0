"""Tests of shared.capacity."""
