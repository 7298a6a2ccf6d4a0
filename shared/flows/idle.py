"""Idle stop and start of the AKS cluster: the reconcile-timer side and the CLI side.

The policy and its safety argument are in ``shared.cluster.power`` (pure); this module does the I/O:
the power record (``shared.cluster.power_store``), ARM stop (``ArmApi.stop_cluster``; start
is the bootstrap's ``Do.START``), one Kubernetes list call, one queue-length read.

* The gate side (dispatch) is ``shared.cluster.idle_gate.IdleGate``.
* :func:`reconcile_timer` is what the reconcile timer runs: nothing at all while the policy has
  the cluster stopped (no Kubernetes API to talk to, and a timer must not start it), else the
  usual pass, then one step of the policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from shared.base.errors import VnbError
from shared.cluster.idle_gate import CAS_ATTEMPTS, IdleGate, utcnow
from shared.cluster.power import Act, Observation, Phase, PowerRecord, Step, decide
from shared.cluster.readiness import ClusterGate, Requeue
from shared.config.settings import Settings
from shared.flows import gauges
from shared.flows.reconcile import SELECT_UNREPORTED, KubeJobs, run
from shared.flows.reconcile_pass import ReconcileReport, SendEvent
from shared.flows.wake import Waker

if TYPE_CHECKING:
    from shared.flows.runtime import Runtime
    from shared.ledger.store import Ledger

log = logging.getLogger("vnode_batch.idle")


@dataclass
class IdleReport:
    step: Step | None = None
    stopped: bool = False
    detail: str = ""


def reconcile_timer(
    *,
    settings: Settings,
    gate: ClusterGate,
    send_event: SendEvent,
    waiting: Callable[[], int],
    now: Callable[[], datetime] = utcnow,
    ledger: Ledger | None = None,
    requeue: Requeue | None = None,
    wake: Waker | None = None,
    policy: bool = True,
) -> ReconcileReport:
    """The reconcile timer: the usual pass, then (idle stop on) one step of the policy.
    ``requeue``: capacity retries; ``wake``: wake-ups of waiting requests (``shared.flows.reconcile.run``). ``policy=False``: no policy
    step (the follow-up passes, ``shared.flows.followup``, run only while Jobs are in flight,
    when the policy has nothing to decide; the timer keeps taking its steps)."""
    if not isinstance(gate, IdleGate):
        return run(
            settings=settings, gate=gate, send_event=send_event, now=now, ledger=ledger, requeue=requeue, wake=wake
        )
    record, _ = gate.store.read()
    if record is not None and record.phase in (Phase.STOPPING, Phase.STOPPED):
        report = ReconcileReport(aborted=f"cluster {record.phase} by the idle policy since {record.since.isoformat()}")
        log.info("reconcile skipped: %s", report.aborted)
        return report
    report = run(
        settings=settings, gate=gate.inner, send_event=send_event, now=now, ledger=ledger, requeue=requeue, wake=wake
    )
    if report.aborted is None and policy:
        idle_step(settings=settings, gate=gate, waiting=waiting, now=now)
    return report


def reconcile_pass(rt: Runtime, *, policy: bool = True) -> ReconcileReport:
    """:func:`reconcile_timer` with this process's settings, clients and ledger (the functions' call)."""
    gauges.queues_and_ledger(rt.settings, count=rt.queues.approximate_count, ledger=rt.ledger, now=utcnow())
    return reconcile_timer(
        settings=rt.settings,
        gate=rt.gate,
        send_event=rt.queues.send_event,
        waiting=lambda: rt.queues.approximate_count(rt.settings.requests_queue),
        now=utcnow,
        ledger=rt.ledger,
        requeue=rt.requeue,
        wake=rt.wake,
        policy=policy,
    )


def unreported_jobs(gate: IdleGate) -> int:
    """Jobs of the app not yet reported (0, 1, or 2 meaning "more"): one list call, limit 1."""
    cluster = gate.inner.check().cluster
    if cluster is None:
        raise VnbError("the cluster is not ready: cannot tell whether Jobs are in flight")
    page = KubeJobs(cluster).list_jobs(label_selector=SELECT_UNREPORTED, limit=1)
    return len(page.items) + (1 if page.continue_token else 0)


def _next_schedule(settings: Settings, moment: datetime) -> datetime | None:
    from shared.schedules.definitions import SchedulesError
    from shared.schedules.enqueue import load_schedules
    from shared.schedules.slots import next_slot

    try:
        slots = [s for s in (next_slot(d, moment) for d in load_schedules(settings) if d.enabled) if s is not None]
    except SchedulesError as e:
        log.warning("idle stop: schedules unreadable (%s); assuming one is due", e)
        return moment
    return min(slots, default=None)


def observe(settings: Settings, gate: IdleGate, waiting: Callable[[], int], moment: datetime) -> Observation:
    return Observation(
        now=moment,
        unreported_jobs=unreported_jobs(gate),
        waiting_requests=waiting(),
        next_schedule=_next_schedule(settings, moment),
    )


def idle_step(
    *, settings: Settings, gate: IdleGate, waiting: Callable[[], int], now: Callable[[], datetime] = utcnow
) -> IdleReport:
    """One move of the policy (``shared.cluster.power.decide``), written with compare-and-swap."""
    seen = observe(settings, gate, waiting, now())
    record, etag = gate.store.read()
    step = decide(record, seen, settings)
    out = IdleReport(step=step, detail=step.why)
    if step.act is Act.NOTHING:
        return out
    assert step.record is not None
    if step.act is Act.CREATE:
        gate.store.create(step.record)
        return out
    assert etag is not None
    if not gate.store.swap(step.record, etag):
        out.detail = (
            f"{step.act}: the record changed meanwhile (a request cancelled the drain?); next pass decides again"
        )
        log.info("idle stop: %s", out.detail)
        return out
    if step.act is Act.DRAIN:
        log.info("idle stop: draining cluster %s (%s)", settings.cluster_name, step.why)
    elif step.act is Act.CANCEL:
        log.info("idle stop: drain cancelled (%s)", step.why)
    elif step.act is Act.STOP:
        out.stopped = _stop(settings, gate, step.record, reason=step.why)
        out.detail = "stop requested" if out.stopped else "stop aborted: work appeared"
    return out


def _stop(settings: Settings, gate: IdleGate, stopping: PowerRecord, *, reason: str) -> bool:
    """The record says ``stopping`` (ours): last look at the Jobs, then POST stop, then ``stopped``."""
    from shared.adapters.arm import ArmCallFailed

    try:
        busy = unreported_jobs(gate)
    except VnbError as e:
        _revert(gate, f"stop aborted: could not list Jobs before stopping ({e})")
        return False
    if busy:
        _revert(gate, f"stop aborted: {busy} Job(s) appeared during the drain")
        return False
    try:
        gate.inner.bootstrap.arm.stop_cluster(gate.inner.bootstrap.targets.resource_group, settings.cluster_name)
    except ArmCallFailed as e:
        _revert(gate, f"stop refused by ARM: {e}")
        return False
    settle(gate, Phase.STOPPED, f"stopped: {reason}")
    gate.inner.forget()
    log.warning(
        "idle stop: cluster %s is being stopped (%s); the next request starts it", settings.cluster_name, reason
    )
    return True


def settle(gate: IdleGate, phase: Phase, reason: str, *, active: bool = False) -> bool:
    """Move the record to ``phase`` whatever it says now (re-read on a lost CAS)."""
    for _ in range(CAS_ATTEMPTS):
        record, etag = gate.store.read()
        if record is None or etag is None:
            now = utcnow()
            if gate.store.create(PowerRecord(phase, now, now, reason)):
                return True
            continue
        if gate.store.swap(record.moved(phase, utcnow(), reason, active=active), etag):
            return True
    return False


def _revert(gate: IdleGate, reason: str) -> None:
    log.info("idle stop: %s", reason)
    settle(gate, Phase.RUNNING, reason, active=True)
