"""Schedule: enqueue one request per due slot of every periodic batch.

The definitions file (VNB_SCHEDULES_FILE, relative to the app root) is read and validated on
first use and again only when it changes on disk. ``cli schedules`` refuses a file with any
problem (SchedulesError naming each schedule and field). The timer runs every valid schedule
and logs an error naming each invalid one: one bad schedule never stops the others, and a
schedule whose slots cannot be computed is logged and skipped the same way. A file whose
structure is unusable (not JSON, no ``schedules`` list, another version) still fails the run.

The slot's request id is the idempotency key: if this run is repeated (the host died during
it before recording it, and runs that occurrence again as past due when it restarts —
``TimerListener.StartAsync``; a send is retried), dispatch meets the Job that the first copy
created (409) and the duplicate completes without a second Job. (Across scaled-out instances
the host's singleton lease lets one instance fire the timer.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from shared.config.settings import Settings
from shared.schedules.definitions import DueSlot, Schedule, ScheduleRow, SchedulesError, loads_each
from shared.schedules.slots import describe, due_slots
from shared.teams.files import teams_for
from shared.teams.model import Teams

log = logging.getLogger("vnode_batch.schedule")

APP_ROOT = Path(__file__).resolve().parents[2]
"""Where function_app.py and host.json live (the Functions app root, ``/home/site/wwwroot``)."""

Send = Callable[[str, str], object]
"""Send ``text`` to ``queue`` (``Queues.send``); raise if it was not sent."""

_cache: dict[tuple[str, int, int, Settings, Teams], tuple[tuple[Schedule, ...], tuple[str, ...]]] = {}
_lock = threading.Lock()


def definitions_path(settings: Settings) -> Path:
    path = Path(settings.schedules_file).expanduser()
    return path if path.is_absolute() else APP_ROOT / path


def load_each(settings: Settings) -> tuple[tuple[Schedule, ...], tuple[str, ...]]:
    """The valid schedules and the problems of the invalid ones, parsed once per version of the
    file and of the teams file (an edited teams file may refuse a schedule, or let one run).
    Raises SchedulesError when the file is missing or unusable as a whole, TeamsInvalid when
    the teams file is (startup refuses that already: ``shared.teams.files.check_teams``)."""
    path = definitions_path(settings)
    try:
        stat = path.stat()
    except OSError as e:
        raise SchedulesError(
            f"VNB_SCHEDULES_FILE ({path})",
            [
                f"cannot read the file: {e.strerror}; create it (see schedules.json in the repository) or fix the setting"
            ],
        ) from e
    teams = teams_for(settings)
    key = (str(path), stat.st_mtime_ns, stat.st_size, settings, teams)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    schedules, problems = loads_each(path.read_text(encoding="utf-8"), settings=settings, source=str(path), teams=teams)
    entry = (schedules, tuple(problems))
    with _lock:
        _cache.clear()  # one file version at a time: an edited file replaces the old entry
        _cache[key] = entry
    return entry


def check_schedules(settings: Settings) -> list[str]:
    """At startup: read the definitions and log an error naming each refused schedule (the
    others run: one bad schedule never stops the rest, nor the app). The problems, for tests."""
    try:
        _, problems = load_each(settings)
    except SchedulesError as e:
        log.error("no schedule will run until %s is fixed: %s", settings.schedules_file, e)
        return list(e.problems)
    for problem in problems:
        log.error("schedule refused, fix %s: %s", settings.schedules_file, problem)
    return list(problems)


def load_schedules(settings: Settings) -> tuple[Schedule, ...]:
    """The validated definitions; SchedulesError naming every problem if any schedule is bad."""
    schedules, problems = load_each(settings)
    if problems:
        raise SchedulesError(str(definitions_path(settings)), list(problems))
    return schedules


def enqueue_due(
    *,
    settings: Settings,
    now: datetime,
    last_run: datetime | None,
    past_due: bool,
    send: Send,
    schedules: Sequence[Schedule] | None = None,
) -> list[DueSlot]:
    """Send one request per due slot to the requests queue; return the slots sent.

    Invalid schedules in the file are logged (ERROR, naming schedule and field) and skipped;
    a schedule whose slots fail to compute is logged and skipped; the others are sent. A
    failed send raises (the sent ones stay sent; a re-run re-sends the same ids, which
    dispatch turns into no-ops).
    """
    if schedules is None:
        definitions, problems = load_each(settings)
        for problem in problems:
            log.error("schedule skipped, fix %s: %s", settings.schedules_file, problem)
    else:
        definitions = tuple(schedules)
    due: list[DueSlot] = []
    for schedule in definitions:
        try:
            due += due_slots(
                [schedule], now=now, timer_schedule=settings.schedules_timer, last_run=last_run, past_due=past_due
            )
        except Exception:
            log.exception("schedule %s skipped: its due slots could not be computed", schedule.name)
    due.sort(key=lambda d: (d.slot, d.schedule.name))
    for slot in due:
        send(settings.requests_queue, slot.message())
        log.info(
            "enqueued %s for schedule %s (slot %s%s)",
            slot.request_id,
            slot.schedule.name,
            slot.slot.isoformat(),
            ", catch-up after missed timer runs" if slot.catch_up else "",
        )
    return due


def describe_schedules(settings: Settings, now: datetime) -> list[ScheduleRow]:
    """Rows for ``python -m shared.cli schedules``: every batch and its next run."""
    return describe(load_schedules(settings), now)
