"""Tests of shared.flows."""
