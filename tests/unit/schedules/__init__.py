"""Tests of shared.schedules."""
