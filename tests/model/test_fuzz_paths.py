"""The fuzz targets of tests/model/fuzz.py, bounded for the suite (``bench/fuzz.py --minutes N``
runs them longer)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.model.fuzz import bodies, check_http, check_queue, operations

BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@BOUNDED
@given(bodies())
def test_any_bytes_on_the_queue_end_in_one_event_and_touch_no_other_record(raw: bytes) -> None:
    check_queue(raw)


@BOUNDED
@given(operations)
def test_any_http_call_is_answered_2xx_or_4xx_and_touches_no_other_record(op: tuple[Any, ...]) -> None:
    check_http(op)
