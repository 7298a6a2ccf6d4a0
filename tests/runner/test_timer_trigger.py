"""Timer-trigger semantics of the local runner, driven by an injected clock (no storage)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import azure.functions as func
import pytest

from devtools.runner import LocalRunner
from tests.conftest import wait_for
from tests.runner import sample_app
from tests.runner.conftest import FakeClock

PROBE = sample_app.PROBE
HOST = {"version": "2.0"}


@pytest.fixture
def timer_runner(clock: FakeClock) -> Iterator[Callable[..., LocalRunner]]:
    runners: list[LocalRunner] = []

    def build(schedule: str = "*/5 * * * * *") -> LocalRunner:
        runner = LocalRunner(sample_app.timer_app, settings={"TICK_SCHEDULE": schedule}, host_json=HOST, clock=clock)
        runners.append(runner)
        return runner

    yield build
    for runner in runners:
        runner.stop(timeout=10)


def test_timer_fires_at_the_ncrontab_slots(timer_runner: Callable[..., LocalRunner], clock: FakeClock) -> None:
    runner = timer_runner("*/5 * * * * *")  # seconds first: every 5 seconds
    with runner:
        assert PROBE.timer_calls == []  # 12:00:01, next slot 12:00:05
        clock.advance(seconds=4)
        wait_for(lambda: len(PROBE.timer_calls) == 1, what="the 12:00:05 run")
        assert PROBE.timer_calls[0] == (False, "2030-01-01T12:00:10+00:00")
        clock.advance(seconds=5)
        wait_for(lambda: len(PROBE.timer_calls) == 2, what="the 12:00:10 run")
        # Asleep for 21 s: one catch-up run flagged past due, then back on the grid.
        clock.advance(seconds=21)
        wait_for(lambda: len(PROBE.timer_calls) == 3, what="the late run")
        assert PROBE.timer_calls[2] == (True, "2030-01-01T12:00:35+00:00")
        clock.advance(seconds=4)
        wait_for(lambda: len(PROBE.timer_calls) == 4, what="the 12:00:35 run")
        assert PROBE.timer_calls[3] == (False, "2030-01-01T12:00:40+00:00")
    assert runner.stats["tick"].successes == 4


def test_timer_is_a_singleton_and_skips_slots_missed_while_running(
    timer_runner: Callable[..., LocalRunner], clock: FakeClock
) -> None:
    gate = threading.Event()
    PROBE.timer_gate = gate
    runner = timer_runner("*/5 * * * * *")
    with runner:
        clock.advance(seconds=4)
        wait_for(lambda: PROBE.timer_active == 1, what="the 12:00:05 run to start")
        clock.advance(seconds=30)  # six slots pass while it runs
        manual = threading.Thread(target=runner.fire_timer, args=("tick",))
        manual.start()  # must wait for the running invocation
        assert PROBE.timer_active == 1
        gate.set()
        manual.join(10)
        assert not manual.is_alive()
        wait_for(lambda: runner.in_flight == 0, what="the runs to finish")
    assert PROBE.timer_max_active == 1
    # The scheduled run and the manual one; the six missed slots were not queued up.
    assert len(PROBE.timer_calls) == 2


def test_run_on_startup_and_no_retry_after_a_failure(clock: FakeClock) -> None:
    calls: list[bool] = []
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="0 0 * * * *", run_on_startup=True, use_monitor=False)
    def hourly(timer: func.TimerRequest) -> None:
        calls.append(timer.past_due)
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    with LocalRunner(app, settings={}, host_json=HOST, clock=clock) as runner:
        wait_for(lambda: runner.stats["hourly"].invocations == 1, what="the start-up run")
        wait_for(lambda: runner.in_flight == 0, what="the start-up run to finish")
        assert runner.stats["hourly"].failures == 1
        assert calls == [False]  # not retried; next run is 13:00:00
        clock.advance(hours=1)
        wait_for(lambda: runner.stats["hourly"].successes == 1, what="the 13:00 run")
    assert runner.stats["hourly"].invocations == 2


def test_timespan_schedule_and_fire_timer_without_start(clock: FakeClock) -> None:
    runner = LocalRunner(sample_app.timer_app, settings={"TICK_SCHEDULE": "00:10:00"}, host_json=HOST, clock=clock)
    assert "tick: timerTrigger '00:10:00' (UTC)" in runner.describe()
    assert runner.fire_timer("tick") == "succeeded"
    assert PROBE.timer_calls == [(False, "2030-01-01T12:10:01+00:00")]
