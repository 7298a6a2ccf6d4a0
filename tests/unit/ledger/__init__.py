"""Tests of shared.ledger."""
