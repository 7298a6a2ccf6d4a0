"""Tests of shared.adapters."""
