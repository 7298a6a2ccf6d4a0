"""Timer listener rules of the local host (TimerListener / ScheduleMonitor), with a test clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devtools.host import HostError, LocalHost
from devtools.host.settings import resolve_setting_tokens
from devtools.host.timers import EPOCH, Schedule, ScheduleMonitor
from tests.conftest import wait_for
from tests.host.conftest import FakeClock, probe

T0 = datetime(2030, 1, 1, 12, 0, 1, tzinfo=UTC)


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2030, 1, 1, hh, mm, ss, tzinfo=UTC)


def test_ncrontab_six_and_five_fields_and_timespans() -> None:
    assert Schedule.parse("30 */5 * * * *").next_after(T0) == at(12, 0, 30)  # seconds first
    assert Schedule.parse("*/5 * * * *").next_after(T0) == at(12, 5)  # five fields: no seconds
    assert Schedule.parse("00:10:00").next_after(T0) == at(12, 10, 1)
    with pytest.raises(HostError, match="not a valid NCRONTAB"):
        Schedule.parse("every minute")
    # %Setting% resolves anywhere in the string, not only as the whole value.
    assert resolve_setting_tokens("0 %M% * * * *", {"M": "*/5"}, function_name="tick") == "0 */5 * * * *"


def test_use_monitor_is_off_for_schedules_firing_more_than_once_a_minute() -> None:
    assert Schedule.parse("*/5 * * * * *").sub_minute(T0)
    assert Schedule.parse("* * * * * *").sub_minute(T0)
    assert not Schedule.parse("0 * * * * *").sub_minute(T0)  # exactly once a minute
    assert not Schedule.parse("*/5 * 3 * * *").sub_minute(T0)  # restricted hour: monitor kept
    assert Schedule.parse("00:00:30").sub_minute(T0)


def _ticks(probe_file: Path) -> list[dict[str, object]]:
    return probe(probe_file, "tick")


def test_a_regular_run_gets_the_status_from_before_it(
        make_host: Callable[..., LocalHost], clock: FakeClock, probe_file: Path, tmp_path: Path) -> None:
    with make_host(timer=True, settings={"TICK_SCHEDULE": "0 * * * * *"}, clock=clock):
        time.sleep(0.3)
        assert _ticks(probe_file) == []  # not due yet, not past due
        clock.advance(seconds=59)  # 12:01:00
        [tick] = wait_for(lambda: _ticks(probe_file), what="the 12:01 run")
    assert tick["past_due"] is False
    status = tick["status"]
    assert isinstance(status, dict)
    assert datetime.fromisoformat(status["Next"]) == at(12, 1)  # this occurrence
    assert datetime.fromisoformat(status["Last"]) == EPOCH  # never ran before
    stored = ScheduleMonitor(tmp_path / "timers").get("tick")
    assert stored is not None
    assert stored["Last"] == at(12, 1)
    assert stored["Next"] == at(12, 2)


def test_past_due_is_decided_only_when_the_listener_starts(
        make_host: Callable[..., LocalHost], clock: FakeClock, probe_file: Path, tmp_path: Path) -> None:
    # The host was down at 11:59: the stored Next is in the past.
    ScheduleMonitor(tmp_path / "timers").update("tick", {"Last": at(11, 58), "Next": at(11, 59),
                                                         "LastUpdated": at(11, 58)})
    with make_host(timer=True, settings={"TICK_SCHEDULE": "0 * * * * *"}, clock=clock):
        [first] = wait_for(lambda: _ticks(probe_file), what="the past-due run")
        assert first["past_due"] is True
        clock.advance(minutes=5)  # a late regular run is not past due
        second = wait_for(lambda: _ticks(probe_file)[1:], what="the late run")[0]
    assert second["past_due"] is False


def test_sub_minute_schedules_get_no_status_and_are_never_past_due(
        make_host: Callable[..., LocalHost], clock: FakeClock, probe_file: Path, tmp_path: Path) -> None:
    with make_host(timer=True, settings={"TICK_SCHEDULE": "*/5 * * * * *"}, clock=clock):
        clock.advance(seconds=4)
        [tick] = wait_for(lambda: _ticks(probe_file), what="the 12:00:05 run")
    assert not tick["status"]
    assert tick["past_due"] is False
    assert ScheduleMonitor(tmp_path / "timers").get("tick") is None  # nothing persisted


def test_a_run_that_outlasts_its_interval_is_followed_by_one_immediate_run(
        make_host: Callable[..., LocalHost], clock: FakeClock, probe_file: Path) -> None:
    def slow_first_run(name: str, outcome: str, seconds: float) -> None:
        if name == "tick" and len(_ticks(probe_file)) == 1:
            clock.advance(minutes=3)  # the 12:01 run "took" three minutes

    with make_host(timer=True, settings={"TICK_SCHEDULE": "0 * * * * *"}, clock=clock,
                   on_invocation=slow_first_run):
        clock.advance(seconds=59)  # 12:01:00
        wait_for(lambda: len(_ticks(probe_file)) >= 2, what="the catch-up run")
        time.sleep(0.5)  # the clock stands still at 12:04: nothing else is due
        ticks = _ticks(probe_file)
    assert len(ticks) == 2  # one immediate run, not one per missed minute
    catch_up = ticks[1]
    assert catch_up["past_due"] is False
    assert isinstance(catch_up["status"], dict)
    assert datetime.fromisoformat(catch_up["status"]["Next"]) == at(12, 2)  # the missed occurrence


def test_fire_timer_runs_a_timer_function_now(make_host: Callable[..., LocalHost], probe_file: Path) -> None:
    host = make_host(timer=True)
    assert host.fire_timer("tick") == "succeeded"
    assert len(_ticks(probe_file)) == 1
    with pytest.raises(HostError, match="not a timer function"):
        host.fire_timer("work")
