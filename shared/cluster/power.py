"""Idle stop of the AKS cluster, as values: the shared power record and what to do next (pure).

The largest fixed cost of the app is the AKS system node pool, which runs even when no batch
has run for weeks. With ``VNB_IDLE_STOP_MINUTES`` set (aks mode), the reconcile timer stops the
cluster through ARM once it has been idle that long; the next request starts it again.

Safety comes from a small record shared by every instance (a Table storage entity, written
only with its ETag — compare-and-swap) that moves through four phases:

``running`` → ``draining`` → ``stopping`` → ``stopped`` → (a request) → ``running``

* **running → draining** (reconcile timer): no unreported Job, no waiting request, no schedule
  due within ``VNB_CLUSTER_START_SECONDS``, and the last activity is older than the idle time.
* **draining → running** (any dispatch, or the timer seeing work): the gate of every instance
  reads the record at least every ``VNB_READY_CACHE_SECONDS``; a gate that finds ``draining``
  puts it back to ``running`` *before* it lets its request create a Job.
* **draining → stopping** (reconcile timer): only after the record has said ``draining`` for
  :func:`drain_seconds` — longer than any gate may trust an older "ready" answer plus the
  longest a dispatch may take to create its Job — and the conditions still hold. The CAS fails
  if any gate cancelled the drain meanwhile. Then the Jobs are listed once more; only with none
  is ``POST .../stop`` sent.
* **stopping → stopped**: after the POST. Gates seeing ``stopping``/``stopped`` answer "not
  ready" (the request is deferred), forget their cached cluster, and let the bootstrap start
  the cluster (``Do.START``); when it is ready again the gate moves the record to ``running``.

Two reconcile timers never run at once (Functions timers are singletons), two gates that both
cancel a drain write the same thing (one CAS wins, the other re-reads ``running``), and two
instances that both POST start meet ARM's 409 "another operation is in progress": the second
simply waits. So a cluster is never stopped with a Job in flight, and instances never fight.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from shared.config.settings import Settings

TOUCH_EVERY: Final = timedelta(minutes=1)
"""The timer records activity at most this often (a Table write), not on every pass."""
STALE_STOPPING: Final = timedelta(minutes=10)
"""A ``stopping`` record this old belongs to a timer that died between its CAS and the POST:
gates then treat it as ``stopped`` (they start the cluster, which ARM answers 204 if it runs)."""
DRAIN_MARGIN_SECONDS: Final = 30.0


class Phase(enum.StrEnum):
    RUNNING = "running"
    DRAINING = "draining"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class PowerRecord:
    """The shared record: phase, since when, and the last time work was seen."""

    phase: Phase
    since: datetime
    last_activity: datetime
    reason: str = ""

    def moved(self, phase: Phase, now: datetime, reason: str, *, active: bool = False) -> PowerRecord:
        return replace(self, phase=phase, since=now, reason=reason, last_activity=now if active else self.last_activity)


@dataclass(frozen=True)
class Observation:
    """What the reconcile timer saw on this pass."""

    now: datetime
    unreported_jobs: int
    waiting_requests: int
    next_schedule: datetime | None

    def busy(self, start_seconds: int) -> str | None:
        """Why the cluster is not idle, or None."""
        if self.unreported_jobs:
            return f"{self.unreported_jobs} Job(s) not yet reported"
        if self.waiting_requests:
            return f"{self.waiting_requests} request(s) waiting in the queue"
        if self.next_schedule is not None and self.next_schedule - self.now <= timedelta(seconds=start_seconds):
            return f"a schedule is due at {self.next_schedule.isoformat()}, within the cluster's start-up time"
        return None


class Act(enum.StrEnum):
    NOTHING = "nothing"
    CREATE = "create"  # no record yet: write one (running, active now)
    TOUCH = "touch"  # running and busy: record the activity
    DRAIN = "drain"  # running → draining
    CANCEL = "cancel"  # draining → running (work appeared)
    STOP = "stop"  # draining → stopping, then list Jobs once more, POST stop, → stopped


@dataclass(frozen=True)
class Step:
    act: Act
    why: str
    record: PowerRecord | None = None
    """The record to write (with the ETag read) for CREATE/TOUCH/DRAIN/CANCEL/STOP."""


def drain_seconds(settings: Settings) -> float:
    """How long ``draining`` must hold before ``stopping``: every gate has re-read the record since
    (``VNB_READY_CACHE_SECONDS``), and a dispatch that passed its gate just before has created its
    Job (two Kubernetes timeouts), plus a margin for clock skew between instances."""
    return settings.ready_cache_seconds + 2 * settings.kube_timeout_seconds + DRAIN_MARGIN_SECONDS


def decide(record: PowerRecord | None, seen: Observation, settings: Settings) -> Step:
    """The reconcile timer's next move (see the module docstring)."""
    assert settings.idle_stop_minutes is not None
    now = seen.now
    busy = seen.busy(settings.cluster_start_seconds)
    if record is None:
        return Step(Act.CREATE, "first pass with idle stop on", PowerRecord(Phase.RUNNING, now, now, "created"))
    idle_for = now - record.last_activity
    limit = timedelta(minutes=settings.idle_stop_minutes)
    if record.phase is Phase.RUNNING:
        if busy:
            if idle_for >= TOUCH_EVERY:
                return Step(Act.TOUCH, busy, replace(record, last_activity=now))
            return Step(Act.NOTHING, busy)
        if idle_for >= limit:
            why = f"idle for {int(idle_for.total_seconds() // 60)} min (VNB_IDLE_STOP_MINUTES={settings.idle_stop_minutes})"
            return Step(Act.DRAIN, why, record.moved(Phase.DRAINING, now, why))
        return Step(
            Act.NOTHING, f"idle for {int(idle_for.total_seconds())} s, stop after {int(limit.total_seconds())} s"
        )
    if record.phase is Phase.DRAINING:
        if busy:
            return Step(Act.CANCEL, busy, record.moved(Phase.RUNNING, now, f"drain cancelled: {busy}", active=True))
        waited = (now - record.since).total_seconds()
        if waited >= drain_seconds(settings):
            return Step(Act.STOP, record.reason, record.moved(Phase.STOPPING, now, record.reason))
        return Step(Act.NOTHING, f"draining for {int(waited)} s of {int(drain_seconds(settings))} s")
    return Step(Act.NOTHING, f"cluster {record.phase} since {record.since.isoformat()}")


@dataclass(frozen=True)
class GateView:
    """What a gate (the dispatch side) does with the record it read."""

    cancel_drain: bool
    """Write ``running`` (CAS) before letting a request create a Job."""
    hold: str | None
    """Not ready, do not even look at the cluster: a stop is underway (the reason)."""
    stopped: bool
    """The cluster is (being) stopped by the policy: forget cached answers, let the bootstrap start it."""


def gate_view(record: PowerRecord | None, now: datetime) -> GateView:
    if record is None or record.phase is Phase.RUNNING:
        return GateView(cancel_drain=False, hold=None, stopped=False)
    if record.phase is Phase.DRAINING:
        return GateView(cancel_drain=True, hold=None, stopped=False)
    if record.phase is Phase.STOPPING and now - record.since < STALE_STOPPING:
        return GateView(
            cancel_drain=False,
            hold="the cluster is being stopped for idleness; it is started again after",
            stopped=True,
        )
    return GateView(cancel_drain=False, hold=None, stopped=True)
