"""The two timers as the host indexes them: names, schedules, monitor, no startup run."""

from __future__ import annotations

import json
import typing
from typing import Any

import azure.functions as func
import pytest

from functions.schedules import last_run
from tests.conftest import function_app_module, get_functions_again


@pytest.fixture(scope="module")
def functions() -> dict[str, Any]:
    return {f.get_function_name(): f for f in get_functions_again(function_app_module().app)}


def trigger(fn: Any) -> dict[str, Any]:
    bindings = json.loads(fn.get_function_json())["bindings"]
    [binding] = [b for b in bindings if b["direction"] == "IN"]
    assert len(bindings) == 1, "events and requests are sent with the queue client, not output bindings"
    return dict(binding)


@pytest.mark.parametrize(
    ("name", "schedule"), [("reconcile", "%VNB_RECONCILE_SCHEDULE%"), ("schedules", "%VNB_SCHEDULES_TIMER%")]
)
def test_timer_bindings(functions: dict[str, Any], name: str, schedule: str) -> None:
    b = trigger(functions[name])
    assert b == {
        "direction": "IN",
        "type": "timerTrigger",
        "name": "timer",
        "schedule": schedule,
        "runOnStartup": False,
        "useMonitor": True,
    }
    hints = typing.get_type_hints(functions[name].get_user_function())
    assert hints["timer"] is func.TimerRequest


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, None),
        ({"Last": "0001-01-01T00:00:00"}, None),  # the host, before the first run
        ({"Last": "0001-01-01T00:00:00+00:00"}, None),
        ({"Last": "2026-11-27T00:00:00+00:00"}, "2026-11-27T00:00:00+00:00"),
        ({"Last": "2026-11-27T01:00:00+01:00"}, "2026-11-27T00:00:00+00:00"),
        ({"Last": "2026-11-27T00:00:00"}, "2026-11-27T00:00:00+00:00"),  # no offset: UTC
        ({"Last": "2026-11-27T00:00:00Z"}, "2026-11-27T00:00:00+00:00"),
        ({"Last": "yesterday"}, None),
    ],
)
def test_last_run_from_the_hosts_schedule_status(status: dict[str, str], expected: str | None) -> None:
    from azure.functions.timer import TimerRequest

    moment = last_run(TimerRequest(past_due=False, schedule_status=status))
    assert (moment.isoformat() if moment else None) == expected
