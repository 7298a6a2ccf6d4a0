"""Tests of shared.job."""
