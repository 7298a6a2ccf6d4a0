"""Tests of shared.config."""
