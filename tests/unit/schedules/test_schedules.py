"""Periodic batches: the definitions file, due slots per timer run, catch-up and DST (pure)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.config.settings import Settings
from shared.intake.request import parse_request
from shared.schedules.definitions import Schedule, SchedulesError, loads, parse
from shared.schedules.enqueue import check_schedules, describe_schedules, enqueue_due, load_each, load_schedules
from shared.schedules.slots import describe, due_slots, latest_slot, request_id, slots_between, timer_window
from tests.conftest import REPO

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
EVERY_MINUTE = "0 * * * * *"  # NCRONTAB: second 0 of every minute


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def sched(cron: str, zone: str = "UTC", name: str = "nightly", **extra: Any) -> Schedule:
    return Schedule(name=name, cron=cron, time_zone=zone, request={"image": IMAGE}, **extra)


def ids(slots: list[Any]) -> list[str]:
    return [s.request_id for s in slots]


# --- the definitions file -------------------------------------------------------------------


def test_the_shipped_sample_is_valid_and_harmless(settings: Settings) -> None:
    [example] = loads((REPO / "schedules.json").read_text(), settings=settings)
    assert example.enabled is False
    assert example.request["timeoutSeconds"] <= 600


def test_every_problem_is_reported_with_schedule_and_field(settings: Settings) -> None:
    data = {
        "version": 2,
        "extra": True,
        "schedules": [
            {"name": "Bad_Name", "cron": "0 2 * * *", "request": {"image": IMAGE}},
            {"name": "six", "cron": "0 0 2 * * *", "timeZone": "Mars/Olympus", "request": {"image": IMAGE}},
            {"name": "with-id", "cron": "0 2 * * *", "request": {"id": "x", "image": "evil.example/x"}},
            {"name": "dup", "cron": "0 2 * * *", "request": {"image": IMAGE}, "enabled": "yes"},
            {"name": "dup", "cron": "0 3 * * *", "request": {"image": IMAGE, "bogus": 1}, "when": "now"},
            {"name": "ok", "cron": "0 3 * * *", "request": {"image": IMAGE}},
            {"name": "ok", "cron": "0 4 * * *", "request": {"image": IMAGE}},
        ],
    }
    with pytest.raises(SchedulesError) as err:
        parse(data, settings=settings, source="schedules.json")
    text = str(err.value)
    for needle in (
        "version: expected 1",
        "unknown top-level field(s) extra",
        "schedules[0] (Bad_Name).name",
        "schedules[1] (six).cron: expected a 5-field cron",
        "schedules[1] (six).timeZone",
        "schedules[2] (with-id).request.id: leave it out",
        "schedules[2] (with-id).request.image: registry of 'evil.example' is not allowed",
        "schedules[3] (dup).enabled: expected true or false",
        "schedules[4] (dup): unknown field(s) when",
        "schedules[4] (dup).request.bogus: unknown field",
        "schedules[6] (ok).name: also used by schedules[5]",
    ):
        assert needle in text, needle
    assert text.startswith("schedules.json: ")


def test_not_json_and_not_an_object(settings: Settings) -> None:
    with pytest.raises(SchedulesError, match="not JSON"):
        loads("{", settings=settings)
    with pytest.raises(SchedulesError, match="expected an object"):
        loads("[]", settings=settings)


def test_request_template_plus_slot_id_is_a_valid_request(settings: Settings) -> None:
    s = Schedule(name="report", cron="0 0 * * *", time_zone="UTC", request={"image": IMAGE, "env": {"A": "1"}})
    [slot] = due_slots([s], now=utc(2026, 11, 27, 0, 0, 0), timer_schedule=EVERY_MINUTE, last_run=None, past_due=False)
    body = json.loads(slot.message())
    assert body == {"id": "report-20261127T000000Z", "image": IMAGE, "env": {"A": "1"}}
    assert parse_request(body, settings=settings).id == "report-20261127T000000Z"


# --- the timer's windows ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timer", "now", "occurrence", "period"),
    [
        ("0 */5 * * * *", utc(2026, 11, 27, 12, 7, 30), utc(2026, 11, 27, 12, 5), timedelta(minutes=5)),
        ("0 */5 * * * *", utc(2026, 11, 27, 12, 9, 59, 500_000), utc(2026, 11, 27, 12, 10), timedelta(minutes=5)),
        ("0 */5 * * * *", utc(2026, 11, 27, 12, 10, 0, 300_000), utc(2026, 11, 27, 12, 10), timedelta(minutes=5)),
        ("0 0 9-17 * * *", utc(2026, 11, 27, 9, 0, 1), utc(2026, 11, 27, 9), timedelta(hours=16)),
        ("00:10:00", utc(2026, 11, 27, 12, 3, 7), utc(2026, 11, 27, 12, 3, 7), timedelta(minutes=10)),
    ],
)
def test_timer_window(timer: str, now: datetime, occurrence: datetime, period: timedelta) -> None:
    window = timer_window(timer, now)
    assert (window.occurrence, window.period) == (occurrence, period)


# --- due slots ------------------------------------------------------------------------------


def test_a_slot_is_due_in_exactly_one_timer_run() -> None:
    nightly = sched("0 0 * * *")
    runs = [
        utc(2026, 11, 26, 23, 59, 0, 200_000),
        utc(2026, 11, 27, 0, 0, 0, 150_000),
        utc(2026, 11, 27, 0, 1, 0, 90_000),
    ]
    found = [ids(due_slots([nightly], now=t, timer_schedule=EVERY_MINUTE, last_run=None, past_due=False)) for t in runs]
    assert found == [[], ["nightly-20261127T000000Z"], []]


def test_the_same_occurrence_fired_twice_or_on_two_instances_gives_the_same_ids() -> None:
    nightly = sched("0 0 * * *")
    first = due_slots(
        [nightly], now=utc(2026, 11, 27, 0, 0, 0, 100_000), timer_schedule=EVERY_MINUTE, last_run=None, past_due=False
    )
    other = due_slots(
        [nightly], now=utc(2026, 11, 27, 0, 0, 1, 900_000), timer_schedule=EVERY_MINUTE, last_run=None, past_due=False
    )
    assert ids(first) == ids(other) == ["nightly-20261127T000000Z"]
    # The host recorded this occurrence as run (ScheduleStatus.Last): a repeat finds nothing.
    again = due_slots(
        [nightly],
        now=utc(2026, 11, 27, 0, 0, 30),
        timer_schedule=EVERY_MINUTE,
        last_run=utc(2026, 11, 27),
        past_due=False,
    )
    assert again == []


def test_catch_up_after_downtime_runs_only_the_latest_missed_slot() -> None:
    hourly = sched("0 * * * *", name="hourly")
    nightly = sched("0 0 * * *", name="nightly")
    last = utc(2026, 11, 24, 21, 30)  # then the app was down for ~3 days
    back = utc(2026, 11, 27, 10, 17, 20)
    due = due_slots([hourly, nightly], now=back, timer_schedule=EVERY_MINUTE, last_run=last, past_due=True)
    assert [(d.request_id, d.catch_up) for d in due] == [
        ("nightly-20261127T000000Z", True),
        ("hourly-20261127T100000Z", True),
    ]
    # The next regular run is not past due and sees Last = the past-due run's start
    # (TimerListener.InvokeJobFunction stores it after every run): no catch-up again.
    nxt = due_slots(
        [hourly, nightly], now=utc(2026, 11, 27, 10, 18), timer_schedule=EVERY_MINUTE, last_run=back, past_due=False
    )
    assert nxt == []


def test_the_run_after_a_past_due_run_keeps_the_slots_after_its_occurrence() -> None:
    # Hourly timer, a schedule every 5 minutes. The app comes back at 02:20: the past-due run
    # owns (01:00, 02:00]; the 03:00 run gets Last = 02:20 from the host and must still
    # enqueue 02:05 … 03:00 — the past-due run did not enqueue 02:05 … 02:20.
    five = sched("*/5 * * * *", name="five")
    back = utc(2026, 11, 27, 2, 20, 0)
    past_due = due_slots([five], now=back, timer_schedule="0 0 * * * *", last_run=utc(2026, 11, 27, 1), past_due=True)
    assert [d.slot for d in past_due][-1] == utc(2026, 11, 27, 2)
    nxt = due_slots([five], now=utc(2026, 11, 27, 3), timer_schedule="0 0 * * * *", last_run=back, past_due=False)
    assert [d.slot for d in nxt] == [utc(2026, 11, 27, 2, m) for m in range(5, 60, 5)] + [utc(2026, 11, 27, 3)]


def test_catch_up_look_back_is_one_timer_period_plus_one_schedule_interval() -> None:
    weekly = sched("0 6 * * 1", name="weekly")  # Mondays 06:00 UTC
    now = utc(2026, 11, 27, 12, 0, 0)  # a Friday
    due = due_slots([weekly], now=now, timer_schedule="0 0 * * * *", last_run=utc(2026, 11, 1), past_due=True)
    [slot] = due
    assert slot.request_id == "weekly-20261123T060000Z"
    window = timer_window("0 0 * * * *", now)
    assert window.occurrence - window.period - slot.slot <= window.period + timedelta(weeks=1)


def test_no_catch_up_without_the_hosts_record_of_the_last_run() -> None:
    nightly = sched("0 0 * * *")
    assert (
        due_slots([nightly], now=utc(2026, 11, 27, 10), timer_schedule=EVERY_MINUTE, last_run=None, past_due=True) == []
    )


def test_a_schedule_more_frequent_than_the_timer_gets_every_slot() -> None:
    five = sched("*/5 * * * *", name="five")
    due = due_slots(
        [five], now=utc(2026, 11, 27, 13, 0, 0), timer_schedule="0 0 * * * *", last_run=None, past_due=False
    )
    assert len(due) == 12
    assert due[0].request_id == "five-20261127T120500Z"
    assert due[-1].request_id == "five-20261127T130000Z"


def test_disabled_schedules_are_skipped() -> None:
    off = sched("* * * * *", enabled=False)
    assert due_slots([off], now=utc(2026, 11, 27), timer_schedule=EVERY_MINUTE, last_run=None, past_due=False) == []


@settings(max_examples=30, deadline=None)
@given(
    cron=st.sampled_from(["0 0 * * *", "*/7 * * * *", "30 2 * * *", "15 */3 * * 1-5", "0 9 1 * *"]),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
    timer_minutes=st.sampled_from([1, 5, 15, 60]),
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 1)),
)
def test_consecutive_timer_runs_enqueue_every_slot_exactly_once(
    cron: str, zone: str, timer_minutes: int, start: datetime
) -> None:
    timer = "0 * * * * *" if timer_minutes == 1 else f"0 */{timer_minutes} * * * *"
    if timer_minutes == 60:
        timer = "0 0 * * * *"
    schedule = sched(cron, zone)
    first = timer_window(timer, start.replace(tzinfo=UTC)).occurrence
    seen: list[str] = []
    tick, last = first, None
    end = first + 150 * timedelta(minutes=timer_minutes)  # 150 runs: 2.5 h to 6 days
    while tick < end:
        jitter = timedelta(milliseconds=(tick.minute * 37) % 900)  # fires a little late
        seen += ids(due_slots([schedule], now=tick + jitter, timer_schedule=timer, last_run=last, past_due=False))
        last, tick = tick, tick + timedelta(minutes=timer_minutes)
    covered = slots_between(schedule, first - timedelta(minutes=timer_minutes), last or first, limit=2000)
    assert seen == [request_id(schedule, s) for s in covered]
    assert len(seen) == len(set(seen))


# --- daylight saving time -------------------------------------------------------------------


def test_spring_forward_a_missing_wall_time_runs_once_at_the_end_of_the_gap() -> None:
    berlin = sched("30 2 * * *", "Europe/Berlin")  # 2026-03-29 02:00 → 03:00 CEST
    slots = slots_between(berlin, utc(2026, 3, 27), utc(2026, 3, 31))
    assert slots == [utc(2026, 3, 27, 1, 30), utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]


def test_fall_back_a_repeated_wall_time_runs_once() -> None:
    berlin = sched("30 2 * * *", "Europe/Berlin")  # 2026-10-25 03:00 CEST → 02:00 CET
    assert slots_between(berlin, utc(2026, 10, 24), utc(2026, 10, 26)) == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST, the first of the two 02:30s
    ]
    assert latest_slot(berlin, utc(2026, 10, 25, 3)) == utc(2026, 10, 25, 0, 30)
    new_york = sched("30 1 * * *", "America/New_York")  # 2026-11-01 02:00 EDT → 01:00 EST
    assert slots_between(new_york, utc(2026, 10, 31, 12), utc(2026, 11, 2, 12)) == [
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
    ]


def test_hourly_schedules_keep_elapsed_time_across_both_changes() -> None:
    hourly = sched("30 * * * *", "Europe/Berlin")
    fall = slots_between(hourly, utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))
    assert fall == [
        utc(2026, 10, 24, 23, 30),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 30),
        utc(2026, 10, 25, 2, 30),
    ]
    spring = slots_between(hourly, utc(2026, 3, 28, 23), utc(2026, 3, 29, 3))
    assert spring == [
        utc(2026, 3, 28, 23, 30),
        utc(2026, 3, 29, 0, 30),
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 29, 2, 30),
    ]


def test_a_daily_schedule_runs_once_per_local_day_all_year() -> None:
    from zoneinfo import ZoneInfo

    for zone in ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe"):
        daily = sched("30 2 * * *", zone)
        slots = slots_between(daily, utc(2025, 12, 31, 12), utc(2026, 12, 31, 12), limit=1000)
        days = [s.astimezone(ZoneInfo(zone)).date() for s in slots]
        assert len(days) == len(set(days)) == 365, zone


def test_new_york_nine_am_in_winter_and_summer() -> None:
    ny = sched("0 9 * * *", "America/New_York")
    [winter] = due_slots(
        [ny], now=utc(2026, 1, 15, 14, 0, 1), timer_schedule=EVERY_MINUTE, last_run=None, past_due=False
    )
    [summer] = due_slots(
        [ny], now=utc(2026, 7, 15, 13, 0, 1), timer_schedule=EVERY_MINUTE, last_run=None, past_due=False
    )
    assert (winter.request_id, summer.request_id) == ("nightly-20260115T140000Z", "nightly-20260715T130000Z")


# --- describe (cli schedules) and the service ---------------------------------------------------


def test_describe_lists_next_runs_in_the_schedules_zone() -> None:
    rows = describe(
        [sched("0 2 * * *", "Europe/Berlin"), sched("0 3 * * *", name="off", enabled=False)], utc(2026, 11, 27, 12)
    )
    on, off = rows
    assert on.next_run is not None
    assert on.next_run.isoformat() == "2026-11-28T02:00:00+01:00"
    assert on.next_request_id == "nightly-20261128T010000Z"
    assert on.as_dict()["nextRunUtc"] == "20261128T010000Z"
    assert (off.next_run, off.next_request_id) == (None, None)


def write(tmp_path: Path, schedules: list[dict[str, Any]]) -> Path:
    path = tmp_path / "schedules.json"
    path.write_text(json.dumps({"version": 1, "schedules": schedules}))
    return path


def test_the_service_sends_due_requests_and_rereads_an_edited_file(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    path = write(tmp_path, [{"name": "a", "cron": "0 0 * * *", "request": {"image": IMAGE}}])
    s = make_settings(VNB_SCHEDULES_FILE=str(path), VNB_SCHEDULES_TIMER=EVERY_MINUTE)
    sent: list[tuple[str, str]] = []

    def send(queue: str, text: str) -> None:
        sent.append((queue, text))

    due = enqueue_due(settings=s, now=utc(2026, 11, 27, 0, 0, 1), last_run=None, past_due=False, send=send)
    assert ids(due) == ["a-20261127T000000Z"]
    assert sent == [("vnb-requests", json.dumps({"id": "a-20261127T000000Z", "image": IMAGE}, separators=(",", ":")))]
    assert [r.name for r in describe_schedules(s, utc(2026, 11, 27))] == ["a"]
    write(tmp_path, [{"name": "b", "cron": "0 0 * * *", "request": {"image": IMAGE}, "description": "edited"}])
    assert [x.name for x in load_schedules(s)] == ["b"]


def test_a_missing_file_names_the_setting(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    s = make_settings(VNB_SCHEDULES_FILE=str(tmp_path / "nope.json"))
    with pytest.raises(SchedulesError, match="VNB_SCHEDULES_FILE"):
        load_schedules(s)


# --- schedules and the teams file (issue 22) -------------------------------------------------


def teams_json(tmp_path: Path) -> Path:
    path = tmp_path / "teams.json"
    team = {
        "name": "ml",
        "nominal": {"cores": 10, "containerGroups": 10},
        "registries": ["mcr.microsoft.com"],
        "secrets": ["ml-db"],
    }
    path.write_text(json.dumps({"version": 1, "teams": [team]}))
    return path


def test_with_a_teams_file_each_schedule_must_name_a_team_that_may_use_what_it_asks_for(
    tmp_path: Path, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path,
        [
            {"name": "no-team", "cron": "0 1 * * *", "request": {"image": IMAGE}},
            {"name": "unknown", "cron": "0 1 * * *", "request": {"image": IMAGE, "team": "web"}},
            {"name": "urgent", "cron": "0 1 * * *", "request": {"image": IMAGE, "team": "ml", "priority": "urgent"}},
            {
                "name": "registry",
                "cron": "0 1 * * *",
                "request": {"image": "docker.io/library/busybox:1", "team": "ml"},
            },
            {
                "name": "secret",
                "cron": "0 1 * * *",
                "request": {"image": IMAGE, "team": "ml", "secrets": {"X": "other"}},
            },
            {"name": "fine", "cron": "0 1 * * *", "request": {"image": IMAGE, "team": "ml", "secrets": {"X": "ml-db"}}},
            {"name": "off", "cron": "0 1 * * *", "request": {"image": IMAGE}, "enabled": False},
        ],
    )
    s = make_settings(
        VNB_SCHEDULES_FILE=str(path),
        VNB_TEAMS_FILE=str(teams_json(tmp_path)),
        VNB_KEY_VAULT_URL="https://kv-test.vault.azure.net/",
        VNB_KEY_VAULT_SECRETS="ml-db,other",
    )
    with caplog.at_level("ERROR", logger="vnode_batch.schedule"):
        problems = check_schedules(s)
    assert [p.split(":", 1)[0] for p in problems] == [
        "schedules[0] (no-team).request.team",
        "schedules[1] (unknown).request.team",
        "schedules[2] (urgent).request.priority",
        "schedules[3] (registry).request.image",
        "schedules[4] (secret).request.secrets",
    ]
    assert "required: this app is shared by teams" in problems[0]
    assert "may not use Key Vault secret(s) other" in problems[4]
    assert len([r for r in caplog.records if "schedule refused" in r.getMessage()]) == 5
    # The others still run (and the disabled one is checked when an edit enables it).
    assert [x.name for x in enqueue_schedules(s)] == ["fine", "off"]
    with pytest.raises(SchedulesError, match=r"schedules\[0\] \(no-team\)\.request\.team"):
        load_schedules(s)


def test_without_a_teams_file_a_schedule_needs_no_team(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    s = make_settings(
        VNB_SCHEDULES_FILE=str(write(tmp_path, [{"name": "a", "cron": "0 1 * * *", "request": {"image": IMAGE}}]))
    )
    assert check_schedules(s) == []


def enqueue_schedules(s: Settings) -> tuple[Schedule, ...]:
    return load_each(s)[0]
