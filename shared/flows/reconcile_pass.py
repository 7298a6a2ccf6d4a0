"""One reconcile pass over a page of the app's unreported Jobs: settle each (report, give back,
or leave running), mark it reported, sweep kept Jobs (the entry point is ``shared.flows.reconcile``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.adapters.kube import Conflict, KubePermanentError
from shared.base.conventions import (
    ANN_REPORTED_AT,
    ANN_VERDICT,
    CONTROLLER_UID,
    FINALIZER_REPORT,
    LABEL_STATE,
    STATE_REPORTED,
)
from shared.base.errors import TransientError, VnbError
from shared.base.times import iso, parse_time
from shared.capacity import model as capacity
from shared.capacity.give_back import REQUEUED, RUNNING, give_back
from shared.cluster.readiness import Requeue
from shared.config.settings import Settings
from shared.cost.pricing import job_cost
from shared.flows import observe, secret_files, workload_access
from shared.flows.jobstore import SELECT_REPORTED, JobStore
from shared.flows.logtails import read_log_tails
from shared.job.read import is_deleting, job_name_of, job_uid, terminal_condition
from shared.ledger import tracking
from shared.ledger.outcome_writer import mark_sent, unsent
from shared.ledger.records import Record, State
from shared.ledger.store import Ledger
from shared.outcomes import events
from shared.outcomes.outcome import Outcome, event_data, outcome
from shared.outcomes.verdicts import Verdict, lost_verdict, needs_pods, stuck_verdict

log = logging.getLogger("vnode_batch.reconcile")

SendEvent = Callable[[str], object]
"""Send one event's text to the events queue (``Queues.send_event``); raise if it was not sent."""


POD_SELECTOR_CHUNK = 50
"""Job uids per ``controller-uid in (...)`` pod list: one call for many Jobs, a short URL."""


TRANSIENT_STREAK_LIMIT = 5
"""End a pass after this many Jobs in a row failed transiently: the API or the queue is down
and the next timer run retries. Isolated transient failures (a 500, a dropped connection) only
skip their own Job, so one flaky call does not hold back the rest of the page."""


SWEEP_EVERY_MIN_SECONDS = 60.0
"""The sweep lists every kept (reported) Job, so it runs at most this often — or every tenth of
VNB_KEEP_FINISHED_SECONDS if longer — not on every timer run: its cost then stays a small
fraction of a pass even when thousands of Jobs are kept."""


SECRET_LEFTOVER_SECONDS = 600.0
"""A per-request Secret no Job owns after this long is a leftover (dispatch creates the Job right after)."""


@dataclass
class ReconcileReport:
    """What one pass did (logged by the function; the benchmark and tests read it)."""

    scanned: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    deleted: int = 0
    pods_deleted: int = 0
    swept: int = 0
    errors: int = 0
    retry_later: int = 0
    """Jobs skipped after a transient failure; still unreported, retried by the next pass."""
    requeued: int = 0
    """Jobs whose pods ACI refused for capacity: deleted, their requests back on the queue."""
    aborted: str | None = None
    incomplete: bool = False
    swept_at: datetime | None = None
    event_ids: list[str] = field(default_factory=list)
    """Ids of the events sent by this pass (a repeat after a crash has the same id)."""

    @property
    def reported(self) -> int:
        return self.succeeded + self.failed

    def summary(self) -> str:
        text = (
            f"scanned {self.scanned} unreported Job(s): {self.succeeded} succeeded, {self.failed} failed, "
            f"{self.running} still running; deleted {self.deleted} Job(s) and {self.pods_deleted} pod(s) of kept ones, "
            f"swept {self.swept}, errors {self.errors}, retry later {self.retry_later}"
        )
        if self.requeued:
            text += f"; {self.requeued} request(s) back on the queue after ACI refused their pods for capacity"
        if self.incomplete:
            text += "; time budget used up, the next run continues"
        if self.aborted:
            text += f"; pass ended early: {self.aborted}"
        return text


class PassAborted(Exception):
    """A transient failure: end the pass, the next timer run retries."""


class ReconcilePass:
    def __init__(
        self,
        settings: Settings,
        jobs: JobStore,
        send_event: SendEvent,
        now: Callable[[], datetime],
        report: ReconcileReport,
        ledger: Ledger | None = None,
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.jobs = jobs
        self.send_event = send_event
        self.now = now
        self.report = report
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_reason = ""
        self._streak = 0
        self.requeue: Requeue | None = None
        self.leftover_pods: set[str] = set()
        self.on_refusal: Callable[[str, datetime | None], object] | None = None

    # --- one page of unreported Jobs ------------------------------------------------------

    def page(self, items: Sequence[dict[str, Any]], pool: ThreadPoolExecutor) -> None:
        moment = self.now()
        timeout = self.settings.pending_timeout_seconds
        todo = [
            job
            for job in items
            if needs_pods(job, now=moment, pending_timeout=timeout)
            or (self.requeue is not None and capacity.may_need_retry(job))
        ]
        self._count("running", len(items) - len(todo))
        if self.ledger is not None:  # ledger: running (once per key per process)
            for job in items:
                if not any(job is t for t in todo):
                    self._track_running(job, moment)
        if not todo:
            return
        try:
            pods = self._pods_of(todo)
        except TransientError as e:
            raise PassAborted(f"listing pods failed: {e}") from e
        list(pool.map(lambda job: self._one(job, pods.get(job_uid(job), [])), todo))
        if self._stop.is_set():
            raise PassAborted(self._stop_reason)

    def _pods_of(self, todo: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Pods of these Jobs, by Job uid, in one list call per chunk (not one per Job)."""
        uids = [job_uid(j) for j in todo if job_uid(j)]
        out: dict[str, list[dict[str, Any]]] = {uid: [] for uid in uids}
        for i in range(0, len(uids), POD_SELECTOR_CHUNK):
            chunk = uids[i : i + POD_SELECTOR_CHUNK]
            for pod in self.jobs.list_pods(label_selector=f"{CONTROLLER_UID} in ({','.join(chunk)})"):
                owner = ((pod.get("metadata") or {}).get("labels") or {}).get(CONTROLLER_UID)
                if owner in out:
                    out[owner].append(pod)
        return out

    def _one(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        if self._stop.is_set():
            return
        name = job_name_of(job)
        try:
            self._settle(job, pods)
        except TransientError as e:
            with self._lock:
                self.report.retry_later += 1
                self._streak += 1
                streak = self._streak
                if streak >= TRANSIENT_STREAK_LIMIT and not self._stop.is_set():
                    self._stop_reason = f"{streak} Jobs in a row failed transiently, last {name}: {e}"
                    self._stop.set()
            log.warning("Job %s: %s; it stays unreported and the next pass retries it", name, e)
            return
        except Exception:
            # One malformed Job (or a bug it triggers) must not stop the others' events.
            log.exception("Job %s could not be reported; it stays unreported and is retried next pass", name)
            self._count("errors")
            return
        with self._lock:
            self._streak = 0

    def _settle(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        name, moment = job_name_of(job), self.now()
        verdict = Verdict.of(job)
        if verdict is None and self.requeue is not None:
            refusal = capacity.capacity_retry(job, pods)
            if refusal is not None and not self._cancelled(job):  # a cancelled request is not given back
                verdict = self._capacity_refused(job, refusal, moment)
                if verdict is None:
                    return
                if terminal_condition(job) is None:
                    try:
                        job = self.jobs.annotate_job(
                            name, annotations={ANN_VERDICT: verdict.annotation()}, resource_version=_rv(job)
                        )
                    except Conflict:
                        self._count("running")
                        return
        if verdict is None and terminal_condition(job) is None:
            if is_deleting(job):
                verdict = lost_verdict(job, now=moment)
            else:
                verdict = stuck_verdict(job, pods, now=moment, pending_timeout=self.settings.pending_timeout_seconds)
            if verdict is None:
                self._count("running")
                if self.ledger is not None:  # ledger
                    self._track_running(job, moment)
                return
            try:
                job = self.jobs.annotate_job(
                    name, annotations={ANN_VERDICT: verdict.annotation()}, resource_version=_rv(job)
                )
            except Conflict:
                log.info("Job %s changed while being judged %s; judging it again next pass", name, verdict.reason)
                self._count("running")
                return
            log.warning("Job %s judged failed: %s: %s", name, verdict.reason, verdict.message)
        result = outcome(job, pods, verdict=verdict, now=moment)
        record = tracking.record_of(self.ledger, job=job) if self.ledger is not None else None
        if record is not None and (record.state == State.CANCELLED or _stray(record, job)):
            # ledger: cancelled through the API (which sent job.cancelled), or a stray duplicate
            # Job of a finished request: no second outcome event.
            self._ended_otherwise(job, record, moment)
            return
        cost = job_cost(pods, prices=self.settings.prices, until=result.finished_at)
        extra: dict[str, Any] = {"cost": cost}
        outputs = workload_access.outputs_of(job, self.settings)  # issue 17: what the Job wrote
        if outputs is not None:
            extra["outputs"] = outputs
        text = self._event(job, result, extra)  # reads pod logs: slow on ACI, a cancel may land meanwhile
        event_id = events.stable_id(events.JOB_SUCCEEDED if result.succeeded else events.JOB_FAILED, job_uid(job))
        if self.ledger is not None:  # ledger: claim the outcome right before its event goes out
            claim = tracking.finished(
                self.ledger,
                job=job,
                succeeded=result.succeeded,
                data={**event_data(job, result, []), **extra},
                event_id=event_id,
                now=moment,
                known=record,
            )
            if not claim.send:  # the request ended otherwise meanwhile (a cancel won): no event
                self._ended_otherwise(job, claim.record, moment)
                return
        self.send_event(text)
        observe.reported(job, result, cost, sent_at=self.now())  # issue 21: run/report spans, metrics
        with self._lock:
            self.report.event_ids.append(event_id)
        try:
            self._mark(job, moment)
        except TransientError:
            self._keep_pods_if_marked(job, pods)
            raise
        self._count("succeeded" if result.succeeded else "failed")
        if is_deleting(job):
            # Its deletion completes now that the finalizer is gone. The Job controller kept its
            # pods running (syncJob does not stop on a deletionTimestamp) and an Orphan delete
            # would leave them, with their container groups: delete them here.
            self._delete_pods(name, pods)
            return
        if self.settings.keep_finished_seconds == 0 or verdict is not None:
            if self.jobs.delete_job(name, propagation="Background"):
                self._count("deleted")
            return
        self._delete_pods(name, pods)  # finished: the Job controller creates no new pods

    def _delete_pods(self, name: str, pods: Sequence[dict[str, Any]]) -> None:
        """Delete the pods of a reported Job, freeing their ACI container groups."""
        for pod in pods:
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue  # deleted already; on the virtual node it goes once its group is gone
            pod_name = str((pod.get("metadata") or {}).get("name"))
            try:
                self.jobs.delete_pod(pod_name)
            except TransientError as e:
                # The Job is reported already, so no later pass would look at it: remember the
                # pod (its ACI container group holds quota) and delete it at the next pass.
                log.warning("pod %s of reported Job %s not deleted (%s); retried next pass", pod_name, name, e)
                with self._lock:
                    self.leftover_pods.add(pod_name)
            except KubePermanentError:
                continue  # gone already
            self._count("pods_deleted")

    def _ended_otherwise(self, job: dict[str, Any], record: Record | None, moment: datetime) -> None:
        """The Job's request already has its outcome: send a cancel's event if its sender crashed
        before sending it (``shared.ledger.outcome_writer.unsent``), then mark and delete the Job."""
        pending = unsent(record)
        if pending is not None and record is not None and self.ledger is not None:
            self.send_event(pending)
            mark_sent(self.ledger, record)
        self._mark(job, moment)
        if not is_deleting(job):
            self.jobs.delete_job(job_name_of(job), propagation="Background")

    def _keep_pods_if_marked(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        """The mark failed transiently, but may have been applied (the answer was lost). Then no
        later pass lists the Job, and its pods would keep their ACI container groups: remember
        them for deletion. If it was not applied, the next pass reports the Job again."""
        try:
            fresh = self.jobs.get_job(job_name_of(job))
        except TransientError:
            fresh = job | {"metadata": {**(job.get("metadata") or {}), "labels": {LABEL_STATE: STATE_REPORTED}}}
        if fresh is not None and _state(fresh) == STATE_REPORTED and job_uid(fresh) in ("", job_uid(job)):
            with self._lock:
                self.leftover_pods.update(str((p.get("metadata") or {}).get("name")) for p in pods)

    def delete_leftovers(self) -> None:
        """Pods of reported Jobs whose deletion failed in an earlier pass (see ``_settle``)."""
        for pod_name in sorted(self.leftover_pods):
            try:
                self.jobs.delete_pod(pod_name)
            except TransientError:
                continue
            except KubePermanentError:
                pass  # gone, or not ours to delete: nothing more to do
            self.leftover_pods.discard(pod_name)

    def _capacity_refused(self, job: dict[str, Any], refusal: str, moment: datetime) -> Verdict | None:
        """Give the request back to the queue (None), or, out of attempts, the failure verdict."""
        assert self.requeue is not None
        result = give_back(
            job,
            refusal,
            moment,
            settings=self.settings,
            jobs=self.jobs,
            requeue=self.requeue,
            on_refusal=self.on_refusal,
            mark=self._mark,
            before_requeue=self._requeued if self.ledger is not None else None,  # ledger
        )
        if result is RUNNING:
            self._count("running")
            return None
        if result is REQUEUED:
            self._count("requeued")
            return None
        assert isinstance(result, Verdict)
        return result

    def _cancelled(self, job: dict[str, Any]) -> bool:
        """ledger: was the Job's request cancelled (DELETE /api/requests/{id})? Read only for a
        Job ACI refused: giving such a request back would only queue a message dispatch drops."""
        if self.ledger is None:
            return False
        record = tracking.record_of(self.ledger, job=job)
        return record is not None and record.state == State.CANCELLED

    def _requeued(self, key: str, attempt: int, reason: str) -> None:
        """ledger: back to ``waiting-for-capacity`` before the request goes back on the queue
        (a failure raises: the Job stays unreported and the next pass gives it back again)."""
        assert self.ledger is not None
        tracking.requeued(self.ledger, key=key, reason=reason, attempt=attempt, now=self.now())

    def _event(self, job: dict[str, Any], result: Outcome, extra: dict[str, Any]) -> str:
        tails = secret_files.mask_tails(
            self.jobs, job, read_log_tails(self.jobs, self.settings, result.log_sources)
        )  # issue 17
        data = {**event_data(job, result, tails), **extra}
        build = events.job_succeeded if result.succeeded else events.job_failed
        return build(
            source=self.settings.event_source,
            job_uid=job_uid(job),
            subject=data["requestKey"] or data["jobName"],
            finished_at=result.finished_at,
            data=data,
        )

    def _mark(self, job: dict[str, Any], moment: datetime) -> None:
        """Mark reported (CAS). On a conflict, read again: someone else may have reported it."""
        name = job_name_of(job)
        for attempt in (1, 2):
            try:
                self.jobs.mark_reported(
                    name,
                    reported_at=iso(moment),
                    finalizers=[f for f in _finalizers(job) if f != FINALIZER_REPORT],
                    resource_version=_rv(job),
                )
                return
            except KubePermanentError as e:
                if e.status == 404:
                    return  # gone already (its deletion completed): nothing left to mark
                raise
            except Conflict:
                fresh = self.jobs.get_job(name)
                if fresh is None or _state(fresh) == STATE_REPORTED or job_uid(fresh) != job_uid(job):
                    return
                if attempt == 2:
                    raise
                job = fresh

    # --- reported Jobs past their keep time ----------------------------------------------------

    def sweep(self) -> None:
        """Delete reported Jobs older than VNB_KEEP_FINISHED_SECONDS (and leftovers of a pass
        that marked a Job but could not delete it). Costs one list call when there are none."""
        keep = self.settings.keep_finished_seconds
        moment = self.now()
        token: str | None = None
        while True:
            page = self.jobs.list_jobs(
                label_selector=SELECT_REPORTED, limit=self.settings.reconcile_page_size, continue_token=token
            )
            for job in page.items:
                if is_deleting(job):
                    continue
                ann = (job.get("metadata") or {}).get("annotations") or {}
                since = parse_time(ann.get(ANN_REPORTED_AT)) or parse_time(
                    (job.get("metadata") or {}).get("creationTimestamp")
                )
                if keep and since is not None and (moment - since).total_seconds() < keep:
                    continue
                if self.jobs.delete_job(job_name_of(job), propagation="Background"):
                    self._count("swept")
            token = page.continue_token
            if not token:
                return

    def _track_running(self, job: dict[str, Any], moment: datetime) -> None:
        assert self.ledger is not None
        try:
            tracking.running(self.ledger, job=job, now=moment)
        except VnbError as e:  # a status nicety: never worth holding back the outcome events
            log.warning("Job %s: recording running in the ledger failed: %s", job_name_of(job), e)

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.report, what, getattr(self.report, what) + n)


def _stray(record: Record, job: dict[str, Any]) -> bool:
    """A second Job for a request the ledger already finished with another Job (a duplicate
    that raced the first one's deletion): it gets no outcome event of its own."""
    recorded = (record.outcome or {}).get("jobUid")
    return record.terminal and recorded is not None and recorded != job_uid(job)


def _rv(job: dict[str, Any]) -> str:
    return str((job.get("metadata") or {}).get("resourceVersion") or "")


def _finalizers(job: dict[str, Any]) -> list[str]:
    return [str(f) for f in (job.get("metadata") or {}).get("finalizers") or []]


def _state(job: dict[str, Any]) -> str | None:
    labels = (job.get("metadata") or {}).get("labels") or {}
    value = labels.get(LABEL_STATE)
    return str(value) if value is not None else None
