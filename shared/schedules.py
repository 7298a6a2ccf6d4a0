"""Periodic batches: the definitions file, and which slots are due when the timer fires (pure).

A schedule is a request template plus a 5-field cron expression evaluated in an IANA time
zone. Every slot becomes one request whose ``id`` is ``<name>-<slot in UTC>``, e.g.
``nightly-report-20261127T000000Z``: that id is the idempotency key, so the same slot
enqueued twice (a timer that fires twice, two instances) still makes one Job.

Which slots are due is derived, not stored. The timer's own schedule cuts time into
windows: the occurrence ``T`` being fired owns the slots in ``(T - P, T]``, where ``P`` is the
gap to the timer's previous occurrence. Consecutive occurrences own disjoint windows, every
instant belongs to one of them, and two runs of the same occurrence compute the same window.
After downtime the host fires once "past due" (only when its listener starts) and its
``ScheduleStatus.Last`` (persisted when ``use_monitor`` is on, which the host ignores for
schedules firing more often than once a minute) says when the timer last ran: the *latest*
slot that fell in the gap is caught up, and only that one. See docs/events.md ("Periodic batches") for the contract.

Daylight saving time: slots are computed on the schedule's wall clock (croniter, in the
zone). A wall time that does not exist (spring forward) runs at the end of the gap; a wall
time that happens twice (fall back) runs once, at its first occurrence — unless the hour
field is ``*`` (hourly or finer schedules), which keep running by elapsed time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from shared.request import RequestInvalid, parse_request
from shared.settings import Settings

VERSION: Final = 1
NAME_PATTERN: Final = r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"
_NAME = re.compile(NAME_PATTERN)
_TIMESPAN = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})$")
_FIELDS: Final = ("name", "cron", "timeZone", "request", "enabled", "description")
MAX_SLOTS_PER_RUN: Final = 500
"""A schedule firing more often than the timer gets several slots per run; this bounds a
pathological pair (every minute, timer once a day) instead of enqueuing thousands."""
CLOCK_SKEW: Final = timedelta(seconds=2)
"""The host may fire a timer a little early (its own code says "likely under 1 second");
a fire this close to the next occurrence counts as that occurrence."""


class SchedulesError(ValueError):
    """The definitions file is unusable; the message names each schedule and field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the periodic batch definitions:\n{lines}")


@dataclass(frozen=True)
class Schedule:
    """One periodic batch, validated."""

    name: str
    cron: str
    time_zone: str
    request: Mapping[str, Any]
    enabled: bool = True
    description: str = ""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True)
class DueSlot:
    """A slot to enqueue now: its schedule, its time (UTC), the request id, and why."""

    schedule: Schedule
    slot: datetime
    request_id: str
    catch_up: bool

    def message(self) -> str:
        """The request message: the template with the slot's idempotency key as ``id``."""
        body = {"id": self.request_id, **self.schedule.request}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ScheduleRow:
    """One line of ``cli schedules``: what runs when."""

    name: str
    enabled: bool
    cron: str
    time_zone: str
    next_run: datetime | None
    next_run_utc: datetime | None
    next_request_id: str | None
    image: str
    description: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "enabled": self.enabled,
            "cron": self.cron,
            "timeZone": self.time_zone,
            "nextRun": self.next_run.isoformat() if self.next_run else None,
            "nextRunUtc": slot_stamp(self.next_run_utc) if self.next_run_utc else None,
            "nextRequestId": self.next_request_id,
            "image": self.image,
            "description": self.description,
        }


# --- the definitions file -------------------------------------------------------------------


def loads(text: str, *, settings: Settings, source: str = "schedules.json") -> tuple[Schedule, ...]:
    """Parse and validate a definitions file's text; raise SchedulesError naming every problem."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SchedulesError(source, [f"not JSON: {e.msg} at line {e.lineno} column {e.colno}"]) from None
    return parse(data, settings=settings, source=source)


def parse(data: Any, *, settings: Settings, source: str = "schedules.json") -> tuple[Schedule, ...]:
    """Validate decoded definitions (``{"version": 1, "schedules": [...]}``)."""
    if not isinstance(data, dict):
        raise SchedulesError(source, ['expected an object like {"version": 1, "schedules": [...]}'])
    problems: list[str] = []
    unknown = sorted(set(data) - {"version", "schedules", "$schema"})
    if unknown:
        problems.append(f"unknown top-level field(s) {', '.join(unknown)} (allowed: version, schedules)")
    if data.get("version") != VERSION:
        problems.append(f"version: expected {VERSION}, got {data.get('version')!r}")
    items = data.get("schedules")
    if not isinstance(items, list):
        problems.append("schedules: expected a list of schedule objects")
        raise SchedulesError(source, problems)
    out: list[Schedule] = []
    seen: dict[str, int] = {}
    for position, item in enumerate(items):
        schedule, errors = _one(item, position, settings)
        problems += errors
        if schedule is not None:
            if schedule.name in seen:
                problems.append(
                    f"schedules[{position}] ({schedule.name}).name: also used by schedules[{seen[schedule.name]}]"
                )
            seen.setdefault(schedule.name, position)
            out.append(schedule)
    if problems:
        raise SchedulesError(source, problems)
    return tuple(out)


def _one(item: Any, position: int, settings: Settings) -> tuple[Schedule | None, list[str]]:
    if not isinstance(item, dict):
        return None, [f"schedules[{position}]: expected an object"]
    name = item.get("name")
    where = f"schedules[{position}]" + (f" ({name})" if isinstance(name, str) and name else "")
    problems: list[str] = []
    unknown = sorted(set(item) - set(_FIELDS))
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(_FIELDS)})")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(
            f"{where}.name: 1-40 lowercase letters, digits and '-', starting and ending with a letter or "
            "digit (it prefixes each slot's request id)"
        )
    cron = item.get("cron")
    if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
        problems.append(
            f"{where}.cron: expected a 5-field cron expression (minute hour day-of-month month day-of-week), "
            f"e.g. '0 2 * * *'; got {cron!r}"
        )
    zone = item.get("timeZone", "UTC")
    if not isinstance(zone, str) or not _zone_ok(zone):
        problems.append(f"{where}.timeZone: not an IANA time zone name (e.g. 'Europe/Berlin', 'UTC'); got {zone!r}")
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"{where}.enabled: expected true or false")
    description = item.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{where}.description: expected a string")
    request = item.get("request")
    if not isinstance(request, dict):
        problems.append(f"{where}.request: expected a request object (docs/schemas/request.v1.json)")
    else:
        if "id" in request:
            problems.append(f"{where}.request.id: leave it out; each slot's id is '<name>-<slot time UTC>'")
        try:
            parse_request({k: v for k, v in request.items() if k != "id"}, settings=settings)
        except RequestInvalid as e:
            problems += [f"{where}.request.{err.field}: {err.message}" for err in e.errors]
    if problems:
        return None, problems
    assert isinstance(name, str)
    assert isinstance(cron, str)
    assert isinstance(zone, str)
    assert isinstance(request, dict)
    return (
        Schedule(
            name=name,
            cron=" ".join(cron.split()),
            time_zone=zone,
            request=dict(request),
            enabled=bool(enabled),
            description=str(description),
        ),
        [],
    )


def _zone_ok(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# --- slots ----------------------------------------------------------------------------------


def slot_stamp(slot: datetime) -> str:
    """``20261127T000000Z``: the slot in UTC, as it appears in request ids."""
    return slot.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def request_id(schedule: Schedule, slot: datetime) -> str:
    return f"{schedule.name}-{slot_stamp(slot)}"


def _every_hour(schedule: Schedule) -> bool:
    hours = croniter(schedule.cron).expanded[1]
    return hours == ["*"] or len(set(hours)) == 24


def _repeated_wall_time(moment: datetime, zone: ZoneInfo) -> bool:
    """The second occurrence of a wall-clock time that happens twice (fall back)."""
    local = moment.astimezone(zone)
    if local.fold != 1:
        return False
    return local.replace(fold=0).utcoffset() != local.utcoffset()


def slots_between(
    schedule: Schedule, after: datetime, until: datetime, *, limit: int = MAX_SLOTS_PER_RUN
) -> list[datetime]:
    """The schedule's slots in ``(after, until]``, as UTC datetimes, oldest first (DST policy
    in the module docstring)."""
    zone = schedule.zone
    every_hour = _every_hour(schedule)
    it = croniter(schedule.cron, after.astimezone(zone))
    out: list[datetime] = []
    while len(out) < limit:
        slot: datetime = it.get_next(datetime).astimezone(UTC)
        if slot > until:
            break
        if slot <= after or (out and slot <= out[-1]):
            continue
        if not every_hour and _repeated_wall_time(slot, zone):
            continue
        out.append(slot)
    return out


def latest_slot(schedule: Schedule, at_or_before: datetime) -> datetime | None:
    """The last slot at or before a moment (the same DST policy as :func:`slots_between`)."""
    zone = schedule.zone
    every_hour = _every_hour(schedule)
    it = croniter(schedule.cron, (at_or_before + timedelta(seconds=1)).astimezone(zone))
    for _ in range(4):  # at most one repeated wall time to step over
        slot: datetime = it.get_prev(datetime).astimezone(UTC)
        if slot > at_or_before:
            continue
        if not every_hour and _repeated_wall_time(slot, zone):
            continue
        return slot
    return None


def next_slot(schedule: Schedule, after: datetime) -> datetime | None:
    found = slots_between(schedule, after, after + timedelta(days=366 * 5), limit=1)
    return found[0] if found else None


# --- the timer's windows --------------------------------------------------------------------


@dataclass(frozen=True)
class TimerWindow:
    """The occurrence being fired (``T``) and the timer's period before it (``P``)."""

    occurrence: datetime
    period: timedelta


def timer_window(timer_schedule: str, now: datetime) -> TimerWindow:
    """The timer occurrence ``now`` belongs to, from its NCRONTAB (or TimeSpan) schedule.

    NCRONTAB: the latest tick at or before ``now`` (allowing :data:`CLOCK_SKEW` for an early
    fire), and the gap to the tick before it. TimeSpan (``HH:MM:SS``, App Service plans):
    ticks are not aligned to the clock, so ``T`` is ``now`` and ``P`` the span.
    """
    now = now.astimezone(UTC)
    span = _TIMESPAN.match(timer_schedule.strip())
    if span:
        hours, minutes, seconds = (int(g) for g in span.groups())
        return TimerWindow(occurrence=now, period=timedelta(hours=hours, minutes=minutes, seconds=seconds))
    probe = (now + CLOCK_SKEW).replace(microsecond=0) + timedelta(seconds=1)
    it = croniter(timer_schedule, probe, second_at_beginning=True)
    occurrence = it.get_prev(datetime).astimezone(UTC)
    previous = it.get_prev(datetime).astimezone(UTC)
    return TimerWindow(occurrence=occurrence, period=occurrence - previous)


def due_slots(
    schedules: Sequence[Schedule],
    *,
    now: datetime,
    timer_schedule: str,
    last_run: datetime | None,
    past_due: bool,
) -> list[DueSlot]:
    """The slots to enqueue for this timer run.

    * regular: every slot in ``(T - P, T]``;
    * catch-up, only when the host flags the run as past due and ``last_run`` (the host's
      ScheduleStatus.Last) is older than ``T - P``: the latest slot in ``(last_run, T - P]``
      as well — one, however long the outage. It is never older than one schedule interval
      before ``T - P``, so the look-back is at most one timer period plus one schedule interval;
    * nothing when ``last_run >= T``: this occurrence already ran (a second fire of it).

    What the host passes (azure-webjobs-sdk-extensions ``Extensions/Timers/Listener/
    TimerListener.cs``): past due is decided only in ``StartAsync``, when the listener starts
    after the stored ``Next`` went by (the app was stopped or down), never for a late regular
    run; the status handed to a run is the one from before it, and ``InvokeJobFunction`` then
    stores ``Last`` = that run's own start. So the run after a past-due run sees ``Last`` = the
    past-due run's start, not the stale one, and is not past due: only the past-due run catches
    up. ``last_run`` is not a lower bound for the regular window: the past-due run enqueued its
    own window only, and the slots between its occurrence and its start belong to the next run.

    Without ``last_run`` the look-back is the timer period only: a first run (the host passes
    ``Last`` = 0001-01-01), or no monitor (``TimerSchedule.Create`` turns ``useMonitor`` off for
    schedules firing more often than once a minute; then no status and never past due).
    """
    window = timer_window(timer_schedule, now)
    occurrence, start = window.occurrence, window.occurrence - window.period
    if last_run is not None and last_run >= occurrence:
        return []
    lower = start
    missed = past_due and last_run is not None and last_run < start - CLOCK_SKEW
    out: list[DueSlot] = []
    for schedule in schedules:
        if not schedule.enabled:
            continue
        for slot in slots_between(schedule, lower, occurrence):
            out.append(DueSlot(schedule, slot, request_id(schedule, slot), catch_up=False))
        if missed:
            assert last_run is not None
            missed_slot = latest_slot(schedule, start)
            if missed_slot is not None and missed_slot > last_run:
                out.append(DueSlot(schedule, missed_slot, request_id(schedule, missed_slot), catch_up=True))
    out.sort(key=lambda d: (d.slot, d.schedule.name))
    return out


def describe(schedules: Sequence[Schedule], now: datetime) -> list[ScheduleRow]:
    """What ``python -m shared.cli schedules`` shows: each batch and its next run."""
    rows = []
    for s in schedules:
        upcoming = next_slot(s, now.astimezone(UTC)) if s.enabled else None
        rows.append(
            ScheduleRow(
                name=s.name,
                enabled=s.enabled,
                cron=s.cron,
                time_zone=s.time_zone,
                next_run=upcoming.astimezone(s.zone) if upcoming else None,
                next_run_utc=upcoming,
                next_request_id=request_id(s, upcoming) if upcoming else None,
                image=str(s.request.get("image", "")),
                description=s.description,
            )
        )
    return rows
