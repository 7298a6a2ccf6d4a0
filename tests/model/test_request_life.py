"""The request life state machine (tests/model/request_life.py), bounded for the suite;
``bench/stateful.py --minutes N`` runs the same machine for longer."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from tests.model.request_life import RequestLife

RequestLife.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRequestLife = RequestLife.TestCase
