"""Reconcile: one completion event for every Job, then the Job goes away.

A pass lists the app's *unreported* Jobs (label selector, paged with limit/continue, so its
cost grows with the Jobs not yet reported — running ones included — never with the Jobs
already reported and deleted). For each Job that is done, or that the app declares failed:

1. build the outcome from the Job and its pods (``shared.outcomes.outcome``, pure);
2. read a bounded log tail of the pods that matter, *before* anything is deleted (ACI keeps
   little, and nothing once the container group is gone);
3. send one CloudEvent with the queue client (``job.succeeded`` / ``job.failed``);
4. then mark the Job reported — a merge patch of the state label, the reported-at annotation
   and the finalizer list, guarded by the resourceVersion read in the list (compare-and-swap);
5. then free its ACI container groups: with VNB_KEEP_FINISHED_SECONDS = 0 delete the Job with
   Background propagation (its pods go with it); otherwise delete only its pods and keep the
   Job object that long — the idempotency window in which a late redelivery of its message
   still meets the Job (409) and creates nothing — and let the sweep delete it afterwards.
   A Job the app judged failed (stuck) is not finished in Kubernetes' eyes: its pods would be
   recreated, so it is deleted at once whatever the setting.

A crash between 3 and 4 sends the same event again on the next pass (same ``id``: it depends
on the Job's uid and the outcome only); nothing is lost, consumers de-duplicate on ``id``.

Stuck and lost Jobs: a pod Pending longer than VNB_PENDING_TIMEOUT_SECONDS, or a Job deleted
by someone else (it stays visible, Terminating, because build_job gives every Job the
``vnode-batch.io/report`` finalizer that only step 4 removes). Kubernetes still considers
those Jobs alive, so the verdict is first written on the Job (an annotation, CAS) and the
event is built from it: a repeat after a crash says the same thing.

The request ledger (when given; the app always gives it) is kept current at fixed points:
``running`` for started Jobs; the outcome claimed right before step 3
(``shared.ledger.outcome_writer``: a cancel that lands while the logs are read wins or loses
there, and the loser sends nothing; a crash after the claim finds it on the next pass and
re-sends the same event); a Job whose request was cancelled (DELETE /api/requests/{id}) gets no
outcome event — the cancel sent one. Because the
ledger remembers finished keys, a reported Job can go at once (VNB_KEEP_FINISHED_SECONDS=0, the
default). Every sweep also purges ledger records older than VNB_LEDGER_RETENTION_SECONDS.

Capacity refusals (issue 11): a Job whose pods ACI refused for quota, capacity or create
throttling, and nothing else failed (``shared.capacity.model.capacity_retry``), is not the request's
failure. With ``requeue`` given, the Job is condemned (an annotation, CAS), its ledger record
goes back to ``waiting-for-capacity`` (not ``failed``: the request is not finished, and the
next attempt's message must find it waiting), its request (carried on the Job) goes back to
the requests queue as a deferral with the next capacity attempt, then the Job is deleted and
marked, with no event; ``on_refusal`` shrinks this process's capacity budget. After
VNB_CAPACITY_MAX_ATTEMPTS refusals the Job is judged failed, reason ``CapacityExhausted``. A
crash after the requeue and before the delete requeues again next pass: the second message finds
the new Job (same content, same attempt) and completes as a duplicate, or, if that Job finished
meanwhile, its dispatch takes back the Job it creates (``shared.flows.take_back``); once the
delete ran (its answer lost), the next pass only marks. A message of a later attempt that meets
the condemned Job waits until it is gone.

Failures: an error on one Job is logged and the pass goes on with the others; a transient
error (Kubernetes 5xx/timeout, queue send failure) ends the pass, and the next timer run
picks up where it stopped (nothing was marked that was not reported).

Length: a little over 600 lines on purpose, so that the order of one pass's effects (event,
ledger, mark, delete, give-back) reads in one place; the Kubernetes calls are in
``shared.flows.jobstore``, the outcome rules in ``shared.outcomes.outcome`` and the capacity
give-back in ``shared.capacity.give_back``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from shared.adapters.kube import Cluster, KubePermanentError
from shared.base.errors import VnbError
from shared.capacity.admission import Admission, admission_for
from shared.cluster.readiness import ClusterGate, Requeue
from shared.config.settings import Settings
from shared.flows import gauges, secret_files, workload_access
from shared.flows.jobstore import SELECT_REPORTED, SELECT_UNREPORTED, JobStore, KubeJobs
from shared.flows.ranking import rank_waiting
from shared.flows.reconcile_pass import (
    SECRET_LEFTOVER_SECONDS,
    SWEEP_EVERY_MIN_SECONDS,
    PassAborted,
    ReconcilePass,
    ReconcileReport,
    SendEvent,
)
from shared.flows.wake import Waker, Wakes, wakes_for
from shared.ledger.outcome_writer import flush
from shared.ledger.store import Ledger
from shared.telemetry import names, signals

log = logging.getLogger("vnode_batch.reconcile")

DEFAULT_BUDGET_SECONDS = 240.0
"""Stop starting new pages after this long: host.json's functionTimeout is 5 minutes, and
the next timer run continues with whatever is still unreported."""
DEFAULT_WORKERS = 8
"""Jobs settled concurrently within a page: each costs ~3 API calls and one queue send, so a
real API server's round trips, not CPU, bound a pass."""
LIST_RESTARTS = 3
RANK_EVERY_SECONDS = 15.0
"""Follow-up passes come every few seconds while Jobs run; the waiting requests' places
(``shared.flows.ranking``) are computed at most this often, and on every timer run."""
"""A pass lists again from the start after a 410 Expired continue token at most this often."""


def run(
    *,
    settings: Settings,
    gate: ClusterGate,
    send_event: SendEvent,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ledger: Ledger | None = None,
    requeue: Requeue | None = None,
    wake: Waker | None = None,
) -> ReconcileReport:
    """One timer run: find the cluster, then :func:`reconcile` it.

    ``requeue`` (send to the requests queue with a delay) enables capacity retries; ``wake``
    (make a waiting request's message visible) lets the pass wake the requests that fit in the
    capacity it freed (``shared.flows.wake``)."""
    signals.add(names.RECONCILE_PASSES)  # every pass, ready or not: the "timer not running" alert counts these
    readiness = gate.check()
    if readiness.cluster is None:
        report = ReconcileReport(aborted=f"cluster not ready: {readiness.reason}")
        log.info("reconcile skipped: %s", report.aborted)
        return report
    cluster = readiness.cluster
    key = f"{cluster.http.host}|{cluster.namespace}"
    moment = now()
    every = max(SWEEP_EVERY_MIN_SECONDS, settings.keep_finished_seconds / 10)
    with _sweep_lock:
        last = _last_sweep.get(key)
        sweep = last is None or (moment - last).total_seconds() >= every
    view = admission_for(settings, key)
    report = reconcile(
        settings=settings,
        jobs=KubeJobs(cluster),
        send_event=send_event,
        now=now,
        sweep=sweep,
        ledger=ledger,
        requeue=requeue,
        on_refusal=lambda why, created: view.refused(why=why, created=created),
        leftover_pods=_leftover_pods.setdefault(key, set()),
    )
    if report.swept_at is not None:
        with _sweep_lock:
            _last_sweep[key] = report.swept_at
        if ledger is not None:  # ledger: retention, and claimed events a DELETE cut short left unsent
            _purge(ledger, settings, report.swept_at)
            _flush(ledger, send_event, report.swept_at)
        # Per-request Secrets of a dispatch that died between the Secret and its Job (issue 17).
        secret_files.sweep(cluster, now=report.swept_at, min_age_seconds=SECRET_LEFTOVER_SECONDS)
    if ledger is not None and report.aborted is None:
        with _sweep_lock:
            last = _last_rank.get(key)
            due = last is None or (moment - last).total_seconds() >= RANK_EVERY_SECONDS
            if due:
                _last_rank[key] = moment
        if due:
            _rank(ledger, view, cluster, moment)
        if wake is not None:
            if report.reported or report.requeued:  # their pods were deleted: capacity freed
                view.relist()
            _wake(ledger, wakes_for(settings, key), view, cluster, wake, moment)
    gauges.capacity(view, cluster, moment)  # issue 21: capacity in use against the budget
    if settings.acr_registries:  # pull Secrets renewed long before their tokens end (issue 17)
        workload_access.renew_pull_secrets(cluster, settings, moment)
    return report


def _rank(ledger: Ledger, view: Admission, cluster: Cluster, moment: datetime) -> None:
    try:
        rank_waiting(ledger, view, cluster, now=moment)
    except VnbError as e:
        log.warning("placing the waiting requests failed (the next pass retries): %s", e)


def _wake(ledger: Ledger, wakes: Wakes, view: Admission, cluster: Cluster, wake: Waker, moment: datetime) -> None:
    try:
        wakes.step(ledger, view, cluster, wake, now=moment)
    except VnbError as e:
        log.warning("waking the waiting requests failed (the next pass retries): %s", e)


def _purge(ledger: Ledger, settings: Settings, moment: datetime) -> None:
    try:
        purged = ledger.purge(moment - timedelta(seconds=settings.ledger_retention_seconds))
    except VnbError as e:
        log.warning("purging the request ledger failed (the next sweep retries): %s", e)
        return
    if purged:
        log.info("purged %d ledger record(s) older than %d s", purged, settings.ledger_retention_seconds)


def _flush(ledger: Ledger, send_event: SendEvent, moment: datetime) -> None:
    try:
        sent = flush(ledger, send_event, moment)
    except VnbError as e:
        log.warning("sending kept cancel events failed (the next sweep retries): %s", e)
        return
    if sent:
        log.info("sent %d cancel event(s) their DELETE left unsent", sent)


_last_sweep: dict[str, datetime] = {}
_last_rank: dict[str, datetime] = {}
_leftover_pods: dict[str, set[str]] = {}
"""Per cluster: pods of reported Jobs a pass could not delete (their container groups hold quota)."""
_sweep_lock = threading.Lock()


def reconcile(
    *,
    settings: Settings,
    jobs: JobStore,
    send_event: SendEvent,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    workers: int = DEFAULT_WORKERS,
    sweep: bool = True,
    ledger: Ledger | None = None,
    requeue: Requeue | None = None,
    on_refusal: Callable[[str, datetime | None], object] | None = None,
    leftover_pods: set[str] | None = None,
) -> ReconcileReport:
    """One pass over the unreported Jobs, then (``sweep``) the deletion of reported Jobs past
    their keep time. ``requeue``/``on_refusal``: capacity retries (module docstring)."""
    report = ReconcileReport()
    pass_ = ReconcilePass(settings, jobs, send_event, now, report, ledger)
    pass_.requeue, pass_.on_refusal = requeue, on_refusal
    if leftover_pods is not None:
        pass_.leftover_pods = leftover_pods
    pass_.delete_leftovers()
    started = time.monotonic()
    token: str | None = None
    restarts = 0
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="reconcile") as pool:
        while True:
            if time.monotonic() - started > budget_seconds:
                report.incomplete = True
                break
            try:
                page = jobs.list_jobs(
                    label_selector=SELECT_UNREPORTED, limit=settings.reconcile_page_size, continue_token=token
                )
                report.scanned += len(page.items)
                pass_.page(page.items, pool)
            except PassAborted as e:
                report.aborted = str(e)
                break
            except KubePermanentError as e:
                if e.status == 410 and token is not None and restarts < LIST_RESTARTS:
                    # Continue pages come from a snapshot that compaction can expire (410 Expired,
                    # apiserver storage/cacher). Jobs already settled are labelled reported and
                    # drop out of a new list; nothing is lost by starting over.
                    restarts += 1
                    log.info("continue token expired (%s); listing again from the start", e)
                    token = None
                    continue
                report.aborted = f"listing Jobs or their pods failed: {e}"
                break
            except VnbError as e:  # a list call failed (5xx, RBAC)
                report.aborted = f"listing Jobs or their pods failed: {e}"
                break
            token = page.continue_token
            if not token:
                break
    if report.aborted is None and sweep:
        try:
            pass_.sweep()
            report.swept_at = now()
        except VnbError as e:
            report.aborted = f"sweeping reported Jobs failed: {e}"
    log.log(logging.WARNING if report.aborted or report.errors else logging.INFO, "reconcile: %s", report.summary())
    return report


__all__ = [
    "SELECT_REPORTED",
    "SELECT_UNREPORTED",
    "JobStore",
    "KubeJobs",
    "ReconcileReport",
    "SendEvent",
    "reconcile",
    "run",
]
