"""Schedule: enqueue one request per due slot of every periodic batch.

The definitions file (VNB_SCHEDULES_FILE, relative to the app root) is read and validated on
first use and again only when it changes on disk; a bad file raises SchedulesError naming
each schedule and field, so the timer's failure log says exactly what to fix.

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

from shared.schedules import DueSlot, Schedule, ScheduleRow, SchedulesError, describe, due_slots, loads
from shared.settings import Settings

log = logging.getLogger("vnode_batch.schedule")

APP_ROOT = Path(__file__).resolve().parents[2]
"""Where function_app.py and host.json live (the Functions app root, ``/home/site/wwwroot``)."""

Send = Callable[[str, str], object]
"""Send ``text`` to ``queue`` (``Queues.send``); raise if it was not sent."""

_cache: dict[tuple[str, int, int, Settings], tuple[Schedule, ...]] = {}
_lock = threading.Lock()


def definitions_path(settings: Settings) -> Path:
    path = Path(settings.schedules_file).expanduser()
    return path if path.is_absolute() else APP_ROOT / path


def load_schedules(settings: Settings) -> tuple[Schedule, ...]:
    """The validated definitions, parsed once per file version (size + mtime)."""
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
    key = (str(path), stat.st_mtime_ns, stat.st_size, settings)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    schedules = loads(path.read_text(encoding="utf-8"), settings=settings, source=str(path))
    with _lock:
        _cache.clear()  # one file version at a time: an edited file replaces the old entry
        _cache[key] = schedules
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
    """Send one request per due slot to the requests queue; return the slots sent."""
    definitions = load_schedules(settings) if schedules is None else schedules
    due = due_slots(definitions, now=now, timer_schedule=settings.schedules_timer, last_run=last_run, past_due=past_due)
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
