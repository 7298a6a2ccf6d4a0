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

Daylight saving time, as Vixie cron and cronie do it (cron(8); cronie ``src/cron.c`` main
loop and find_jobs, see :func:`runs_at_fixed_times`): slots
are the schedule's wall-clock times in its zone (croniter over naive local times, then mapped
to instants here). A schedule that runs at specific times (one minute value, not every hour:
``30 2 * * *``) runs a repeated wall time (fall back) once, at its first occurrence, and a
wall time that does not exist (spring forward) at the end of the gap: a daily job runs once
every local day. Any other schedule (``*/10 1-3 * * *``, ``15 * * * *``) runs by the wall
clock: both occurrences of a repeated time (the autumn hour 02:00-03:00 in Paris gives
``*/10 1-3`` twelve slots, not six), and nothing for times that do not exist, so it keeps its
spacing in elapsed time. Kubernetes CronJob runs both occurrences even for fixed times
(kubernetes/kubernetes#121594, "CronJob will be run twice, when switching to wintertime"),
which is why fixed times follow cron here. Slot ids are UTC, so every slot's id is unique.

With a teams file (VNB_TEAMS_FILE), an enabled schedule's request must name a team that may use
its priority, secrets, registry and data (``shared.teams.model.team_errors``, the dispatcher's
own check): otherwise the schedule is refused when the file is read, and the problem names it
(``schedules[0] (nightly).request.team: required: …``), as the teams file's own errors name their
entry. A disabled schedule is not checked against the teams: it never becomes a request, and
enabling it is an edit of the file, which is then read and checked again.

A cron that can never fire (``0 0 31 2 *``: no February 31st; any day-of-month the listed
months lack) is refused when the file is read: croniter accepts its syntax and then finds no
date (CroniterBadDateError after its 50-year search, croniter ``croniter.py`` _calc).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from shared.config.settings import Settings
from shared.intake.request import RequestInvalid, parse_request
from shared.teams.model import Teams, team_errors

VERSION: Final = 1
NAME_PATTERN: Final = r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"
_NAME = re.compile(NAME_PATTERN)
TIMESPAN = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})")
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


def loads(
    text: str, *, settings: Settings, source: str = "schedules.json", teams: Teams | None = None
) -> tuple[Schedule, ...]:
    """Parse and validate a definitions file's text; raise SchedulesError naming every problem."""
    return parse(_decoded(text, source), settings=settings, source=source, teams=teams)


def loads_each(
    text: str, *, settings: Settings, source: str = "schedules.json", teams: Teams | None = None
) -> tuple[tuple[Schedule, ...], list[str]]:
    """Like :func:`loads`, but the valid schedules and the others' problems (:func:`parse_each`)."""
    return parse_each(_decoded(text, source), settings=settings, source=source, teams=teams)


def _decoded(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SchedulesError(source, [f"not JSON: {e.msg} at line {e.lineno} column {e.colno}"]) from None


def parse(
    data: Any, *, settings: Settings, source: str = "schedules.json", teams: Teams | None = None
) -> tuple[Schedule, ...]:
    """Validate decoded definitions (``{"version": 1, "schedules": [...]}``); raise
    SchedulesError naming every problem."""
    schedules, problems = parse_each(data, settings=settings, source=source, teams=teams)
    if problems:
        raise SchedulesError(source, problems)
    return schedules


def parse_each(
    data: Any, *, settings: Settings, source: str = "schedules.json", teams: Teams | None = None
) -> tuple[tuple[Schedule, ...], list[str]]:
    """The valid schedules and the problems of the others, one schedule at a time: what the
    timer runs, so that one bad schedule does not stop the rest. A file whose structure is
    wrong (not an object, unknown top-level fields, another ``version``, no ``schedules``
    list) raises SchedulesError with every problem: nothing in it can be trusted. A name
    used twice keeps its first schedule. ``teams``: the teams file's (module docstring)."""
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
        schedule, errors = _one(item, position, settings, teams or Teams())
        problems += errors
        if schedule is not None:
            if schedule.name in seen:
                problems.append(
                    f"schedules[{position}] ({schedule.name}).name: also used by schedules[{seen[schedule.name]}]"
                )
                continue
            seen[schedule.name] = position
            out.append(schedule)
    if unknown or data.get("version") != VERSION:
        raise SchedulesError(source, problems)
    return tuple(out), problems


def _one(item: Any, position: int, settings: Settings, teams: Teams) -> tuple[Schedule | None, list[str]]:
    if not isinstance(item, dict):
        return None, [f"schedules[{position}]: expected an object"]
    name = item.get("name")
    where = f"schedules[{position}]" + (f" ({name})" if isinstance(name, str) and name else "")
    problems: list[str] = []
    unknown = sorted(set(item) - set(_FIELDS))
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(_FIELDS)})")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
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
    elif first_run(cron) is None:
        problems.append(
            f"{where}.cron: {cron!r} never fires: no date matches its day-of-month, month and day-of-week "
            "(e.g. February 30/31, or the 31st of a 30-day month)"
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
            parsed = parse_request({k: v for k, v in request.items() if k != "id"}, settings=settings)
        except RequestInvalid as e:
            problems += [f"{where}.request.{err.field}: {err.message}" for err in e.errors]
        else:
            if enabled is not False:  # a disabled one is checked when an edit enables it
                problems += [f"{where}.request.{err.field}: {err.message}" for err in team_errors(teams, parsed)]
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


# --- cron: the first run and slot names (the rest of slot arithmetic is shared.schedules.slots) ---


# --- the timer's windows --------------------------------------------------------------------


def slot_stamp(slot: datetime) -> str:
    """``20261127T000000Z``: the slot in UTC, as it appears in request ids."""
    return slot.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def first_run(cron: str, after: datetime = datetime(2000, 1, 1)) -> datetime | None:
    """The first wall-clock time matching ``cron`` after ``after`` (naive), or None when no
    date within croniter's 50-year horizon matches (``0 0 31 2 *``, ``0 0 31 4,6,9,11 *``)."""
    return next(cron_walls(cron, after), None)


def cron_walls(cron: str, start: datetime, *, backwards: bool = False) -> Iterator[datetime]:
    """Matching wall-clock times (naive) after ``start`` (or before it), in order; stops where
    croniter finds none within its 50-year horizon."""
    it = croniter(cron, start)
    while True:
        try:
            yield it.get_prev(datetime) if backwards else it.get_next(datetime)
        except CroniterBadDateError:
            return
