"""Tests of shared.statuspage."""
