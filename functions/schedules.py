"""Timer ``schedules``: enqueue one request per due slot of each periodic batch."""

from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func

from functions.bindings import SCHEDULES_TIMER
from shared.flows.runtime import runtime, utcnow
from shared.schedules.enqueue import enqueue_due

bp = func.Blueprint()  # type: ignore[no-untyped-call]


def last_run(timer: func.TimerRequest) -> datetime | None:
    """The host's ScheduleStatus.Last (when the timer last ran), or None when unknown.

    The status is the one from before this run; ``Last`` is the previous run's start
    (azure-webjobs-sdk-extensions ``Extensions/Timers/Listener/TimerListener.cs``
    ``InvokeJobFunction``). The host sends ``0001-01-01T00:00:00`` before the first run
    (``StartAsync``), no status at all when the monitor is off (``TimerSchedule.Create`` turns
    ``useMonitor`` off for schedules firing more often than once a minute), and a time without
    offset when it kept DateTime.Kind unspecified; all are handled here, at the binding edge.
    """
    status = getattr(timer, "schedule_status", None) or {}
    raw = status.get("Last") if isinstance(status, dict) else None
    if not isinstance(raw, str) or not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.year < 2000:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@bp.function_name("schedules")
@bp.timer_trigger(arg_name="timer", schedule=SCHEDULES_TIMER, run_on_startup=False, use_monitor=True)
def schedules(timer: func.TimerRequest) -> None:
    """Requests are sent with the queue client one by one: a failure half-way leaves the sent
    ones sent, and a re-run re-sends the same ids, which dispatch turns into no-ops."""
    rt = runtime()
    enqueue_due(
        settings=rt.settings,
        now=utcnow(),
        last_run=last_run(timer),
        past_due=bool(timer.past_due),
        send=rt.queues.send,
    )
