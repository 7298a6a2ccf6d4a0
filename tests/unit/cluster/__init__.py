"""Tests of shared.cluster."""
