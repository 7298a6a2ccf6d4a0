"""Timer trigger: the host's TimerListener, schedules and ScheduleMonitor.

Sources (azure-webjobs-sdk-extensions ``src/WebJobs.Extensions/Extensions/Timers/``):

* ``Scheduling/TimerSchedule.cs`` ``Create``: a TimeSpan ("hh:mm:ss") or an NCRONTAB
  expression, 6 fields (seconds first) or 5 (``Scheduling/CronSchedule.cs`` ``TryCreate``);
  ``useMonitor`` is switched off when the schedule fires more than once a minute
  (``ShouldDisableScheduleMonitor``: every field but seconds is ``*`` and the next minute
  holds more than one occurrence; for a TimeSpan, a period under one minute).
* ``Listener/TimerListener.cs`` ``StartAsync``: past due is decided **only here**, by
  ``ScheduleMonitor.CheckPastDueAsync`` (the recorded ``Next`` is earlier than now) → one
  immediate run with ``IsPastDue = true``; else ``runOnStartup`` → one immediate run.
* ``TimerListener.InvokeJobFunction``: the function gets the status from *before* the run
  (``Next`` = this occurrence; null when the monitor is off); afterwards ``Last`` = the
  invocation time (moved up to ``Next`` if it fired early), ``Next`` = the occurrence after
  ``Last``; ``HandleTimerEvent``/``StartTimer``/``GetNextTimerInterval``: the next wait is
  ``Next - now``, at least one tick, so a run that outlasts its interval is followed by one
  immediate (not past-due) run. One invocation at a time (``_invocationLock``).
* ``Scheduling/FileSystemScheduleMonitor.cs``: the status persisted per timer (on Azure a blob,
  azure-webjobs-sdk ``StorageScheduleMonitor``); here a JSON file per timer in ``state_dir``.
* %Setting% in the schedule is resolved anywhere in the string (``TimerTriggerAttributeBindingProvider``
  via the name resolver; see :mod:`devtools.host.settings`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter

from devtools.host.bindings import FunctionSpec, TimerTrigger, timer_trigger_data
from devtools.host.contract import Host
from devtools.host.settings import _TIMESPAN, HostError, parse_timespan

log = logging.getLogger("devtools.host")

EPOCH = datetime.min.replace(tzinfo=UTC)  # ScheduleStatus' default(DateTime)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """An NCRONTAB (5 or 6 fields, seconds first, UTC) or TimeSpan schedule."""

    text: str
    interval: timedelta | None = None  # TimeSpan schedules

    @classmethod
    def parse(cls, text: str) -> Schedule:
        if _TIMESPAN.fullmatch(text.strip()):
            seconds = parse_timespan(text, setting="schedule")
            if seconds <= 0:
                raise HostError(f"timer schedule {text!r} must be a positive interval")
            return cls(text, timedelta(seconds=seconds))
        fields = text.split()
        # croniter reads a 6-field expression with seconds *last* unless told
        # second_at_beginning=True (croniter 7.0 ``_expand``).
        if len(fields) not in (5, 6) or not croniter.is_valid(text, second_at_beginning=len(fields) == 6):
            raise HostError(f"'{text}' is not a valid NCRONTAB expression (six fields, seconds first, "
                            "e.g. '0 */5 * * * *') or TimeSpan ('hh:mm:ss')")
        return cls(text)

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        nxt: datetime = croniter(self.text, moment.astimezone(UTC),
                                 second_at_beginning=len(self.text.split()) == 6).get_next(datetime)
        return nxt

    def sub_minute(self, now: datetime) -> bool:
        """``TimerSchedule.ShouldDisableScheduleMonitor``."""
        if self.interval is not None:
            return self.interval < timedelta(minutes=1)
        fields = self.text.split()
        if len(fields) != 6 or any(f != "*" for f in fields[1:]):
            return False
        first = self.next_after(now)
        return self.next_after(first) <= now + timedelta(minutes=1)


class ScheduleMonitor:
    """Persisted ``ScheduleStatus`` per timer (``FileSystemScheduleMonitor``), in ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)

    def get(self, name: str) -> dict[str, datetime] | None:
        try:
            raw = json.loads((self.dir / f"{name}.status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return {k: datetime.fromisoformat(v) for k, v in raw.items()}

    def update(self, name: str, status: dict[str, datetime]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"{name}.status.json").write_text(json.dumps({k: v.isoformat() for k, v in status.items()}))

    def check_past_due(self, name: str, now: datetime, schedule: Schedule,
                       status: dict[str, datetime] | None) -> bool:
        """``ScheduleMonitor.CheckPastDueAsync`` (a changed schedule is not past due)."""
        if status is None:
            self.update(name, {"Last": EPOCH, "Next": schedule.next_after(now), "LastUpdated": now})
            return False
        basis = status["Last"] if status["Last"] != EPOCH else status["LastUpdated"]
        expected = schedule.next_after(basis) if basis != EPOCH else schedule.next_after(now)
        if status["Next"] != expected and now > expected:
            expected = schedule.next_after(now)
        elif status["Next"] == expected:
            expected = status["Next"]
        return now > expected


class TimerListener:
    """One timer function's listener thread."""

    def __init__(self, host: Host, spec: FunctionSpec, monitor: ScheduleMonitor,
                 clock: Callable[[], datetime], tick: float) -> None:
        assert isinstance(spec.trigger, TimerTrigger)
        self.host, self.spec, self.trigger = host, spec, spec.trigger
        self.schedule = Schedule.parse(self.trigger.schedule)
        self.clock, self.tick = clock, tick
        self.use_monitor = self.trigger.use_monitor and not self.schedule.sub_minute(clock())
        self.monitor = monitor if self.use_monitor else None
        self.lock = threading.Lock()  # TimerListener._invocationLock
        self.status: dict[str, datetime] = {}
        self.thread = threading.Thread(target=self.run, name=f"timer-{spec.name}", daemon=True)

    def start_status(self) -> bool:
        """``StartAsync``: load the status; True when the first run is past due."""
        now = self.clock()
        past_due = False
        stored = None
        if self.monitor is not None:
            stored = self.monitor.get(self.spec.name)
            past_due = self.monitor.check_past_due(self.spec.name, now, self.schedule, stored)
        self.status = stored or {"Last": EPOCH, "Next": self.schedule.next_after(now), "LastUpdated": EPOCH}
        return past_due

    def run(self) -> None:
        stopping = self.host.stopping
        if self.start_status():
            self.invoke(self.clock(), past_due=True, reason="Timer is past due")
        elif self.trigger.run_on_startup:
            self.invoke(self.clock(), run_on_startup=True, reason="Timer fired on startup (runOnStartup)")
        log.info("%s: next run at %s", self.spec.name, self.status["Next"].isoformat())
        while not stopping.is_set():
            wait = (self.status["Next"] - self.clock()).total_seconds()
            if wait > 0:
                stopping.wait(min(wait, self.tick))
                continue
            self.invoke(self.clock(), reason=f"Timer fired at {self.clock().isoformat()}")

    def invoke(self, invocation_time: datetime, *, past_due: bool = False, run_on_startup: bool = False,
               reason: str) -> bool:
        """``InvokeJobFunction``: run once (never two at a time), then move the status on."""
        with self.lock:
            if self.host.stopping.is_set() and self.host.started:
                return False
            passed = ({k: v.isoformat() for k, v in self.status.items()} if self.monitor is not None else None)
            ok = self.host.invoke(self.spec, timer_trigger_data(self.trigger.param, status=passed, past_due=past_due),
                                  {}, reason=reason)
            adjusted = invocation_time
            if not past_due and not run_on_startup and self.status.get("Next", EPOCH) > invocation_time:
                adjusted = self.status["Next"]
            self.status = {"Last": adjusted, "Next": self.schedule.next_after(adjusted), "LastUpdated": adjusted}
            if self.monitor is not None:
                self.monitor.update(self.spec.name, self.status)
            return ok
