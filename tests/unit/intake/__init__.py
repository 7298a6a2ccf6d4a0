"""Tests of shared.intake."""
