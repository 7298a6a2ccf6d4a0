"""Periodic batches across daylight saving time and crons that can never fire (pure).

The semantics under test (shared/schedules/definitions.py docstring, after Vixie cron / cronie):
a schedule with several minutes per hour or every hour runs by the wall clock (both
occurrences of a repeated time, nothing for a time that does not exist); a schedule at
specific times runs a repeated time once (the first) and a missing time at the end of the gap.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.config.settings import Settings
from shared.schedules.definitions import Schedule, SchedulesError, first_run, parse, parse_each
from shared.schedules.enqueue import enqueue_due
from shared.schedules.slots import latest_slot, request_id, runs_at_fixed_times, slots_between
from tests.unit.schedules.test_schedules import EVERY_MINUTE, IMAGE, sched, utc, write

# --- crons that can never fire --------------------------------------------------------------


@pytest.mark.parametrize(
    "cron",
    ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *", "0 0 31 6 *", "0 0 31 9 *", "0 0 31 11 *", "0 0 31 4,6,9,11 *",
     "0 0 30,31 2 *", "*/5 * 31 2 *"],
)  # fmt: skip
def test_a_cron_that_can_never_fire_is_refused_naming_the_schedule(cron: str, settings: Settings) -> None:
    data = {"version": 1, "schedules": [{"name": "never", "cron": cron, "request": {"image": IMAGE}}]}
    with pytest.raises(SchedulesError, match=r"schedules\[0\] \(never\)\.cron: .* never fires"):
        parse(data, settings=settings)


@pytest.mark.parametrize(
    "cron",
    [
        "0 0 29 2 *",  # leap years only
        "0 0 31 1-12 *",  # the 31st of the months that have one
        "0 0 31 2 1",  # day-of-month OR day-of-week (cron(5)): every Monday in February
        "0 0 L 2 *",  # the last day of February
        "0 0 30 1,2 *",
    ],
)
def test_sparse_but_possible_crons_are_accepted(cron: str, settings: Settings) -> None:
    [schedule] = parse(
        {"version": 1, "schedules": [{"name": "rare", "cron": cron, "request": {"image": IMAGE}}]}, settings=settings
    )
    assert first_run(schedule.cron) is not None


def test_one_bad_schedule_never_stops_the_timer_enqueueing_the_others(
    tmp_path: Path, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    write(
        tmp_path,
        [
            {"name": "a", "cron": "0 0 * * *", "request": {"image": IMAGE}},
            {"name": "feb-31", "cron": "0 0 31 2 *", "request": {"image": IMAGE}},
            {"name": "bad-image", "cron": "0 0 * * *", "request": {"image": "evil.example/x"}},
            {"name": "b", "cron": "0 0 * * *", "request": {"image": IMAGE}},
        ],
    )
    s = make_settings(VNB_SCHEDULES_FILE=str(tmp_path / "schedules.json"), VNB_SCHEDULES_TIMER=EVERY_MINUTE)
    sent: list[str] = []
    with caplog.at_level(logging.ERROR, logger="vnode_batch.schedule"):
        due = enqueue_due(
            settings=s, now=utc(2026, 11, 27, 0, 0, 1), last_run=None, past_due=False, send=lambda q, t: sent.append(t)
        )
    assert [d.request_id for d in due] == ["a-20261127T000000Z", "b-20261127T000000Z"]
    assert len(sent) == 2
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "(feb-31).cron" in logged
    assert "never fires" in logged
    assert "(bad-image).request.image" in logged


def test_a_schedule_whose_slots_cannot_be_computed_is_skipped_and_logged(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    # Built directly (not from a file): the timer must survive even what validation missed.
    broken = sched("0 0 31 2 *", name="broken")
    good = sched("0 0 * * *", name="good")
    s = make_settings(VNB_SCHEDULES_TIMER=EVERY_MINUTE)
    sent: list[str] = []
    with caplog.at_level(logging.ERROR, logger="vnode_batch.schedule"):
        due = enqueue_due(
            settings=s,
            now=utc(2026, 11, 27, 0, 0, 1),
            last_run=utc(2020, 1, 1),
            past_due=True,
            send=lambda q, t: sent.append(t),
            schedules=[broken, Schedule(name="zone", cron="0 0 * * *", time_zone="Nowhere/Atlantis", request={}), good],
        )
    assert [d.request_id for d in due] == ["good-20261126T000000Z", "good-20261127T000000Z"]
    assert "schedule zone skipped" in caplog.text


def test_parse_each_keeps_the_valid_schedules(settings: Settings) -> None:
    data = {
        "version": 1,
        "schedules": [
            {"name": "ok", "cron": "0 3 * * *", "request": {"image": IMAGE}},
            {"name": "never", "cron": "0 0 31 4 *", "request": {"image": IMAGE}},
            {"name": "ok", "cron": "0 4 * * *", "request": {"image": IMAGE}},
        ],
    }
    schedules, problems = parse_each(data, settings=settings)
    assert [(s.name, s.cron) for s in schedules] == [("ok", "0 3 * * *")]
    assert len(problems) == 2
    with pytest.raises(SchedulesError, match="version"):
        parse_each({**data, "version": 2}, settings=settings)


# --- daylight saving time: the reported case ----------------------------------------------------


def test_every_ten_minutes_in_hours_1_to_3_runs_both_occurrences_of_the_repeated_hour() -> None:
    paris = sched("*/10 1-3 * * *", "Europe/Paris")  # 2026-10-25 03:00 CEST → 02:00 CET
    slots = slots_between(paris, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))
    local = [s.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M%z") for s in slots]
    assert len(slots) == 3 * 6 + 6  # 01:xx, 02:xx twice, 03:xx
    assert local[6:18] == [f"02:{m}0+0200" for m in range(6)] + [f"02:{m}0+0100" for m in range(6)]
    assert len({request_id(paris, s) for s in slots}) == len(slots)


def test_the_same_schedule_written_as_a_list_behaves_the_same() -> None:
    a = sched("*/10 1-3 * * *", "Europe/Paris")
    b = sched("0,10,20,30,40,50 1-3 * * *", "Europe/Paris")
    window = (utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))
    assert slots_between(a, *window) == slots_between(b, *window)


def test_every_ten_minutes_in_the_spring_gap_runs_nothing_for_missing_times() -> None:
    paris = sched("*/10 1-3 * * *", "Europe/Paris")  # 2026-03-29 02:00 CET → 03:00 CEST
    slots = slots_between(paris, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    local = [s.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M") for s in slots]
    assert local == [f"01:{m}0" for m in range(6)] + [f"03:{m}0" for m in range(6)]


def test_fixed_time_schedules_run_a_repeated_time_once_and_a_missing_time_at_the_end_of_the_gap() -> None:
    two_times = sched("30 2,14 * * *", "Europe/Paris")
    fall = slots_between(two_times, utc(2026, 10, 24, 13), utc(2026, 10, 25, 23))
    assert fall == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 13, 30)]
    spring = slots_between(two_times, utc(2026, 3, 28, 14), utc(2026, 3, 29, 23))
    assert spring == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 12, 30)]
    assert latest_slot(two_times, utc(2026, 3, 29, 1, 30)) == utc(2026, 3, 29, 1, 0)


def test_which_schedules_run_at_fixed_times() -> None:
    assert runs_at_fixed_times("30 2 * * *")
    assert runs_at_fixed_times("0 8,20 * * 1-5")
    assert runs_at_fixed_times("5 */2 * * *")  # every other hour, one minute: specific times of day
    assert not runs_at_fixed_times("*/10 1-3 * * *")
    assert not runs_at_fixed_times("0,30 2 * * *")
    assert not runs_at_fixed_times("15 * * * *")
    assert not runs_at_fixed_times("15 0-23 * * *")


# --- daylight saving time: any cron, any zone (property) -----------------------------------------

ZONES = [
    "Europe/Paris",
    "America/New_York",
    "America/Santiago",  # DST changes at midnight local
    "Australia/Lord_Howe",  # a 30-minute change
    "Asia/Gaza",
    "Pacific/Chatham",  # UTC+12:45 / +13:45
    "UTC",
]

minute_field = st.one_of(
    st.just("*"),
    st.integers(1, 30).map(lambda n: f"*/{n}"),
    st.integers(0, 59).map(str),
    st.lists(st.integers(0, 59), min_size=2, max_size=4, unique=True).map(lambda xs: ",".join(map(str, sorted(xs)))),
)
hour_field = st.one_of(
    st.just("*"),
    st.integers(0, 23).map(str),
    st.tuples(st.integers(0, 23), st.integers(0, 23)).map(lambda t: f"{min(t)}-{max(t)}"),
    st.integers(2, 6).map(lambda n: f"*/{n}"),
    st.lists(st.integers(0, 23), min_size=2, max_size=3, unique=True).map(lambda xs: ",".join(map(str, sorted(xs)))),
)
day_field = st.sampled_from(["* * *", "* * 0", "* * 6", "1-15 * *", "* 3,4,9,10,11 *"])


def _transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    """The instants (UTC, whole minutes) where the zone's UTC offset changes in a year."""
    out: list[datetime] = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    while t.year == year:
        nxt = t + step
        if t.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            low, high = t, nxt
            while high - low > timedelta(minutes=1):
                mid = low + (high - low) / 2
                if mid.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = mid
                else:
                    high = mid
            out.append(high.replace(second=0, microsecond=0))
        t = nxt
    return out


def expected_slots(cron: str, zone: ZoneInfo, after: datetime, until: datetime) -> list[datetime]:
    """The stated semantics, brute force: every UTC minute whose wall time matches, less the
    second occurrence of a repeated time for fixed-time schedules, plus the end of a gap for a
    fixed-time schedule's missing wall times."""
    fixed = runs_at_fixed_times(cron)
    out: set[datetime] = set()
    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while t <= until:
        local = t.astimezone(zone)
        wall = local.replace(tzinfo=None)
        if croniter.match(cron, wall):
            repeated_second = local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()
            if not (fixed and repeated_second):
                out.add(t)
        # a gap ends at t: the wall times it skipped, for fixed-time schedules
        before = (t - timedelta(minutes=1)).astimezone(zone)
        jump = local.utcoffset() - before.utcoffset()  # type: ignore[operator]
        if fixed and jump > timedelta(0):
            skipped = before.replace(tzinfo=None) + timedelta(minutes=1)
            while skipped < wall:
                if croniter.match(cron, skipped):
                    out.add(t)
                skipped += timedelta(minutes=1)
        t += timedelta(minutes=1)
    return sorted(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    minute=minute_field,
    hour=hour_field,
    days=day_field,
    zone_name=st.sampled_from(ZONES),
    which=st.integers(0, 3),
    cuts=st.lists(st.integers(1, 6 * 60 - 1), max_size=3, unique=True),
    year=st.sampled_from([2026, 2027]),
)
def test_any_cron_across_dst_skips_nothing_duplicates_nothing(
    minute: str, hour: str, days: str, zone_name: str, which: int, cuts: list[int], year: int
) -> None:
    zone = ZoneInfo(zone_name)
    cron = f"{minute} {hour} {days}"
    transitions = _transitions(zone, year) or [datetime(year, 6, 1, tzinfo=UTC)]
    around = transitions[which % len(transitions)]
    after, until = around - timedelta(hours=3), around + timedelta(hours=3)
    schedule = sched(cron, zone_name)
    whole = slots_between(schedule, after, until, limit=10_000)
    assert whole == expected_slots(cron, zone, after, until), cron
    assert len({request_id(schedule, s) for s in whole}) == len(whole)
    # Consecutive timer windows partition the slots: none lost or repeated at a boundary.
    edges = [after, *sorted(after + timedelta(minutes=c) for c in cuts), until]
    pieces = [s for a, b in itertools.pairwise(edges) for s in slots_between(schedule, a, b, limit=10_000)]
    assert pieces == whole
    # The latest slot at or before any boundary agrees with the slots themselves.
    for edge in edges[1:]:
        earlier = [s for s in whole if s <= edge]
        if earlier:
            assert latest_slot(schedule, edge) == earlier[-1]
