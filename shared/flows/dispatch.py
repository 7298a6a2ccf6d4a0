"""Dispatch: one queue message → exactly one Job, or exactly one event saying why not.

Outcomes, and what the function does with them:
- created / duplicate: the Job exists (a redelivered message finds its own Job) → complete.
- rejected: the message can never become a Job (invalid, too large to wait inside a 64 KiB
  queue message: shared/intake/deferral.py, or larger than a whole capacity budget) → a
  ``request.rejected`` event.
- deferred: the cluster is not ready, or the Job does not fit in the ACI capacity budget
  (``shared.capacity.admission``) → the request is re-enqueued with a visibility delay
  (carrying its key and first-seen time) and this message completes.
- dead-lettered: it waited for the cluster (or for capacity) longer than allowed → a
  ``request.deadlettered`` event, reason ``ClusterNotReady`` (``CapacityTimeout``).
- cancelled: the request was cancelled (DELETE /api/requests/{id}) before its Job ran → complete.
- transient failures raise, so the host retries and finally poisons the message.

With a ``ledger`` (the app always passes one), each step is recorded there too
(``shared.ledger.tracking``); the ledger also remembers finished keys, so a redelivered
message for a request that already ran (its Job deleted since) is a duplicate, not a new Job.
Every outcome that ends a request (rejected, dead-lettered) is claimed in the ledger before its
event is returned (``shared.flows.finish``): a message whose request already ended otherwise
returns no event, and a redelivery after a crash returns the same event again.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.adapters.kube import AdmissionDenied, AlreadyExists, Cluster, KubePermanentError
from shared.base.conventions import ANN_REQUEST_HASH
from shared.base.errors import FieldError, PermanentError, TransientError, bounded
from shared.base.text import clean
from shared.capacity import model as capacity
from shared.capacity.admission import Admission, admission_for, whole_budget
from shared.cluster.readiness import ClusterGate, Readiness, Requeue
from shared.config.settings import Settings
from shared.flows import finish, secret_files, workload_access
from shared.flows.finish import Owner
from shared.intake.deferral import QUEUE_MESSAGE_LIMIT, Deferral, encoded_size, envelope_problems, room, unwrap, wrap
from shared.intake.request import BatchRequest, RequestInvalid, as_correlation_id, as_key, decode_body, parse_request
from shared.job.render import JobMeta, build_job, job_name
from shared.ledger import tracking
from shared.ledger.records import Record, State
from shared.ledger.store import Ledger
from shared.outcomes import events
from shared.teams.files import teams_for
from shared.teams.model import team_errors

log = logging.getLogger("vnode_batch.dispatch")

GIVEN_BACK = "already created; its Job is being given back for capacity"
"""Detail of a duplicate whose Job the reconciler condemned: the ledger is not moved to
``submitted`` for it (the key is, or is about to be, waiting for capacity again)."""


class Outcome(enum.StrEnum):
    CREATED = "created"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    DEFERRED = "deferred"
    DEADLETTERED = "deadlettered"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Inbound:
    """A queue message as the trigger delivers it."""

    message_id: str
    body: bytes
    dequeue_count: int = 1
    inserted_at: datetime | None = None


@dataclass
class DispatchResult:
    outcome: Outcome
    key: str | None = None
    job_name: str | None = None
    detail: str = ""
    events: list[str] = field(default_factory=list)
    reason: str = ""
    """The event's reason code (``ClusterNotReady``, ``ExceedsCapacity`` …), when it ends the request."""


"""Send ``text`` to the requests queue, invisible for ``delay`` seconds."""


def dispatch(
    message: Inbound,
    *,
    settings: Settings,
    gate: ClusterGate,
    requeue: Requeue,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ledger: Ledger | None = None,
    admission: Admission | None = None,
) -> DispatchResult:
    """Handle one request message (see the module docstring for the outcomes).

    ``admission``: the capacity view to use (default: this process's for the cluster)."""
    data, errors = decode_body(message.body)
    if data is None:
        return _invalid(message, settings, None, None, errors, now(), ledger)
    data, deferral = unwrap(data)
    if deferral is not None:  # a forged or damaged envelope: its key and times are not to be trusted
        bad = envelope_problems(
            deferral,
            inserted_at=message.inserted_at,
            now=now(),
            max_wait_seconds=_longest_wait(settings, deferral),
            max_capacity_attempts=settings.capacity_max_attempts,
        )
        if bad:
            # A forged envelope's id is not to be trusted either: it names the message alone.
            errors = [FieldError(name, why) for name, why in bad]
            return _invalid(message, settings, data, None, errors, now(), ledger, forged=True)
    key_default = deferral.key if deferral else message.message_id
    try:
        request = parse_request(data, settings=settings)
    except RequestInvalid as e:
        return _invalid(message, settings, data, deferral, e.errors, now(), ledger)
    key = request.id or key_default
    enqueued_at = deferral.first_seen if deferral else message.inserted_at
    meta = JobMeta(key=key, message_id=deferral.message_id if deferral else message.message_id, enqueued_at=enqueued_at)
    owner = finish.owner_of_request(request, key=key, message_id=meta.message_id)
    spare = room(data, key=meta.key, message_id=meta.message_id, encoding="none")  # adapters/queues.py: plain text
    if spare < 0:
        # Refused whether or not the cluster is ready now, so the answer does not depend on
        # timing: a request that could not wait must not be accepted only on lucky days.
        size = encoded_size(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
        error = FieldError(
            "$body",
            f"the request is {size} bytes (compact JSON); a request must leave room for the envelope it gets "
            f"while it waits for the cluster, so at most {size + spare} bytes here "
            f"(a queue message carries {QUEUE_MESSAGE_LIMIT} bytes); shorten env, args or labels",
        )
        return _rejected(
            message,
            settings,
            [error],
            now(),
            key=meta.key,
            correlation_id=request.correlationId,
            ledger=ledger,
            owner=owner,
        )
    manifest = build_job(request, meta, settings=settings)
    # --- capacity (issue 11): carry the request and its attempt on the Job; refuse what never fits
    attempt = deferral.capacity_attempts if deferral else 0
    capacity.mark_attempt(manifest, data, attempt)
    demand = capacity.Demand.of_job(manifest)
    too_big = whole_budget(settings).too_big(demand)
    if too_big:
        # Like the size rule above: refused whether or not the cluster is ready now.
        error = FieldError("parallelism" if demand.groups > 1 else "cpu", f"the Job {too_big}; it could never run")
        return _rejected(
            message,
            settings,
            [error],
            now(),
            key=meta.key,
            correlation_id=request.correlationId,
            reason="ExceedsCapacity",
            ledger=ledger,
            owner=owner,
        )
    # Teams (issue 22): a queue producer names the team; the teams file says what it may use.
    not_allowed = team_errors(teams_for(settings), request)
    if not_allowed:
        return _rejected(
            message,
            settings,
            not_allowed,
            now(),
            key=meta.key,
            correlation_id=request.correlationId,
            reason="NotAllowedForTeam",
            ledger=ledger,
            owner=owner,
        )

    known: Record | None = None
    if ledger is not None:  # ledger: record first; a finished or cancelled key never runs again
        known = tracking.received(
            ledger, key=key, request=request, message_id=meta.message_id, now=now(), source="queue"
        )
        early = _ledger_says(message, settings, request, meta, known, now(), capacity_retry=attempt > 0)
        if early is not None:
            return early

    readiness = gate.check()
    if readiness.cluster is None:
        result = _defer(message, settings, request, data, meta, deferral, readiness, requeue, now())
        _track_wait(ledger, message.message_id, result, request, meta, deferral, now(), capacity_wait=False)
        return result
    cluster = readiness.cluster
    view = _capacity(settings, cluster, admission)
    decision = view.admit(
        cluster,
        demand,
        key=meta.key,
        first_seen=meta.enqueued_at or now(),
        now=now(),
        job=manifest["metadata"]["name"],
        team=request.team or "",
        priority=request.priority or "normal",
    )
    if not decision.admitted:
        result = _wait_for_capacity(
            message, settings, request, data, meta, deferral, decision.reason, decision.delay, requeue, now()
        )
        _track_wait(
            ledger, message.message_id, result, request, meta, deferral, now(), capacity_wait=True, queue=decision.queue
        )
        return result
    try:
        # pull Secret fresh; Key Vault files and SAS URLs in the per-request Secret before the Job (issue 17)
        ready = workload_access.prepare(request, manifest, settings=settings, cluster=cluster, now=now())
        if isinstance(ready, workload_access.Refused):
            view.refund(decision.ticket)
            return _rejected(
                message,
                settings,
                ready.errors,
                now(),
                key=meta.key,
                correlation_id=request.correlationId,
                reason=ready.reason,
                ledger=ledger,
                owner=owner,
            )
        if ready.files:
            secret_files.stage(cluster, manifest, ready.files)
        result = _create(message, settings, cluster, request, manifest, meta, now(), attempt=attempt, ledger=ledger)
        if ready.files:
            if result.outcome in (Outcome.CREATED, Outcome.DUPLICATE):
                secret_files.adopt(cluster, manifest)
            else:
                secret_files.discard(cluster, manifest)
    except BaseException:
        view.refund(decision.ticket)
        raise
    if result.outcome is Outcome.CREATED:
        view.created(decision.ticket)
    else:
        view.refund(decision.ticket)
    if result.outcome is Outcome.DEFERRED:  # the previous attempt's Job is still being deleted
        result = _wait_for_capacity(message, settings, request, data, meta, deferral, result.detail, 1, requeue, now())
        _track_wait(ledger, message.message_id, result, request, meta, deferral, now(), capacity_wait=True)
        return result
    track = result.outcome in (Outcome.CREATED, Outcome.DUPLICATE) and result.detail != GIVEN_BACK
    if ledger is not None and track and result.job_name:  # ledger
        record = tracking.submitted(ledger, key=key, job_name=result.job_name, now=now(), known=known)
        if record is not None and record.state == State.CANCELLED:
            # Cancelled while this invocation created the Job: take it back before it runs.
            cluster.delete_job(result.job_name, propagation="Background")
            log.info("key %s was cancelled while its Job %s was created; deleted it", key, result.job_name)
            return DispatchResult(Outcome.CANCELLED, key=key, job_name=result.job_name, detail="cancelled")
        if record is not None and record.terminal and result.outcome == Outcome.CREATED:
            # The first Job finished and was deleted between our ledger read and our create:
            # this one is a second run of a finished request. Delete it; the reconciler sends no
            # event for it (its uid is not the one the ledger recorded).
            cluster.delete_job(result.job_name, propagation="Background")
            log.warning(
                "key %s finished (%s) while a duplicate created Job %s; deleted it", key, record.state, result.job_name
            )
            return DispatchResult(
                Outcome.DUPLICATE, key=key, job_name=result.job_name, detail=f"already {record.state}"
            )
    return result


def _longest_wait(settings: Settings, deferral: Deferral) -> int:
    """How long ago a genuine envelope's request can have been first seen: a deferral is written
    only while the request waited less than the longer wait (cluster or capacity); a capacity
    give-back (``capacityAttempts`` ≥ 1) follows a Job that sat in a backlog and ran for any time,
    so only the ledger's retention bounds it (past that the ledger has forgotten the key)."""
    if deferral.capacity_attempts > 0:
        return max(settings.ledger_retention_seconds, settings.capacity_max_wait_seconds)
    return max(settings.bootstrap_max_wait_seconds, settings.capacity_max_wait_seconds)


def _track_wait(
    ledger: Ledger | None,
    message_id: str,
    result: DispatchResult,
    request: BatchRequest,
    meta: JobMeta,
    deferral: Deferral | None,
    now: datetime,
    *,
    capacity_wait: bool,
    queue: dict[str, Any] | None = None,
) -> None:
    """ledger: ``waiting-for-cluster``/``waiting-for-capacity`` after a re-enqueue (``queue``: its
    position and estimated start), or ``dead-lettered`` after the wait ran out."""
    if ledger is None:
        return
    if result.outcome == Outcome.DEFERRED:
        attempts = (deferral.count if deferral else 0) + 1
        tracking.waiting(
            ledger,
            key=meta.key,
            reason=result.detail,
            attempts=attempts,
            now=now,
            capacity=capacity_wait,
            queue=queue,
        )
    elif result.outcome == Outcome.DEADLETTERED:  # claimed before the event goes out; a loser sends none
        [text] = result.events
        ended = finish.give_up(
            ledger=ledger,
            text=text,
            message_id=message_id,
            key=meta.key,
            reason=result.reason,
            detail=result.detail,
            request=request,
            original_message_id=meta.message_id,
            now=now,
        )
        result.events[:] = ended.events


def _ledger_says(
    message: Inbound,
    settings: Settings,
    request: BatchRequest,
    meta: JobMeta,
    known: Record,
    now: datetime,
    *,
    capacity_retry: bool = False,
) -> DispatchResult | None:
    """The outcome the ledger already decides for this key: a reused id, a finished or a
    cancelled request. None: go on (new, waiting, or — for a capacity retry's message —
    submitted/running: the Job's 409 settles it)."""
    if known.content_hash is not None and known.content_hash != request.content_hash():
        return _id_reused(message, settings, request, meta, now, where=f"{known.state} in the ledger")
    again = finish.replay(
        known,
        settings=settings,
        message_id=message.message_id,
        body=message.body,
        dequeue_count=message.dequeue_count,
        original_message_id=meta.message_id,
        first_seen=meta.enqueued_at,
        now=now,
    )
    if known.state == State.CANCELLED:
        return DispatchResult(
            Outcome.CANCELLED, key=meta.key, job_name=known.job_name, detail="cancelled", events=again
        )
    if again:  # this very message ended it before, and crashed before its event was written
        outcome = Outcome.REJECTED if known.state == State.REJECTED else Outcome.DEADLETTERED
        return DispatchResult(outcome, key=meta.key, detail=f"already {known.state} (event sent again)", events=again)
    if known.terminal or (known.state in (State.SUBMITTED, State.RUNNING) and not capacity_retry):
        # Submitted/running: the Job exists (it is recorded only after the create). Not even
        # trying the create matters once reported Jobs are deleted at once: a create racing the
        # reconciler's delete would otherwise make a second Job. A capacity retry's message
        # (the reconciler gave its Job back: condemned, then the key moved back to
        # waiting-for-capacity, then requeued) always goes on to the create: a duplicate
        # message of the earlier attempt may have written "submitted" for the condemned Job
        # after the give-back, and trusting that would drop the request; the 409 tells a live
        # Job (duplicate) from a condemned one (wait), and a Job finished meanwhile makes the
        # ledger terminal, which the check after the create handles.
        log.info("duplicate delivery of key %s: already %s in the ledger", meta.key, known.state)
        return DispatchResult(Outcome.DUPLICATE, key=meta.key, job_name=known.job_name, detail=f"already {known.state}")
    return None


def _capacity(settings: Settings, cluster: Cluster, given: Admission | None) -> Admission:
    return given or admission_for(settings, f"{cluster.http.host}|{cluster.namespace}")


def _wait_for_capacity(
    message: Inbound,
    settings: Settings,
    request: BatchRequest,
    data: dict[str, Any],
    meta: JobMeta,
    deferral: Deferral | None,
    reason: str,
    delay: int,
    requeue: Requeue,
    now: datetime,
) -> DispatchResult:
    """Re-enqueue a request that does not fit yet; dead-letter it (CapacityTimeout) after
    VNB_CAPACITY_MAX_WAIT_SECONDS."""
    first_seen = meta.enqueued_at or now
    waited = (now - first_seen).total_seconds()
    if waited >= settings.capacity_max_wait_seconds:
        detail = f"no capacity for {int(waited)} s (VNB_CAPACITY_MAX_WAIT_SECONDS): {reason}"
        return _waited_too_long(
            message, settings, request, meta, first_seen, now, reason="CapacityTimeout", detail=detail
        )
    count = (deferral.count if deferral else 0) + 1
    attempts = deferral.capacity_attempts if deferral else 0
    text = wrap(
        data,
        key=meta.key,
        message_id=meta.message_id,
        first_seen=first_seen,
        count=count,
        reason=reason,
        capacity_attempts=attempts,
    )
    requeue(text, delay)
    log.info("%s: key %s deferred %d s (deferral %d)", reason, meta.key, delay, count)
    return DispatchResult(Outcome.DEFERRED, key=meta.key, detail=reason)


def _create(
    message: Inbound,
    settings: Settings,
    cluster: Cluster,
    request: BatchRequest,
    manifest: dict[str, Any],
    meta: JobMeta,
    now: datetime,
    *,
    attempt: int = 0,
    ledger: Ledger | None = None,
) -> DispatchResult:
    name = manifest["metadata"]["name"]
    try:
        cluster.create_job(manifest)
    except AlreadyExists:
        existing = cluster.get_job(name)
        if existing is None:  # deleted between our create and get: let the host retry
            raise TransientError(f"Job {name} for key {meta.key!r} vanished while checking a duplicate") from None
        theirs = (existing.get("metadata", {}).get("annotations") or {}).get(ANN_REQUEST_HASH)
        if (
            theirs == request.content_hash()
            and capacity.attempt_of(existing) < attempt
            and capacity.condemned(existing)
        ):
            # ACI refused the previous attempt for capacity; the reconciler is deleting its Job.
            # (A live Job of an earlier attempt — a stale duplicate message created it — runs
            # this request already: this message is then a duplicate.)
            detail = f"waiting for capacity: Job {name} of the previous attempt is still being deleted"
            return DispatchResult(Outcome.DEFERRED, key=meta.key, job_name=name, detail=detail)
        if theirs == request.content_hash() and capacity.condemned(existing):
            # A message of the same (or an earlier) attempt as a Job being given back: the
            # reconciler's requeued message carries the request on; nothing to record.
            log.info("duplicate delivery of key %s: Job %s is being given back for capacity", meta.key, name)
            return DispatchResult(Outcome.DUPLICATE, key=meta.key, job_name=name, detail=GIVEN_BACK)
        if theirs == request.content_hash():
            log.info("duplicate delivery of key %s: Job %s already exists", meta.key, name)
            return DispatchResult(Outcome.DUPLICATE, key=meta.key, job_name=name, detail="already created")
        return _id_reused(message, settings, request, meta, now, where=f"Job {name} in namespace {settings.namespace}")
    except KubePermanentError as e:
        if e.status == 404:  # namespace missing: an operator (or the bootstrap) must create it
            raise TransientError(
                f"namespace {settings.namespace!r} does not exist in the cluster (VNB_NAMESPACE); "
                "create it or let the bootstrap create it",
                status=404,
            ) from e
        # 400/422: the API refused the manifest. The request passed our schema, so this is
        # a cluster policy (admission webhook, quota object, LimitRange): retrying cannot help.
        # An admission webhook's denial (any 4xx, 403 by default) says so in its own words.
        denied = isinstance(e, AdmissionDenied)
        error = FieldError("$job", str(e))
        return _rejected(
            message,
            settings,
            [error],
            now,
            key=meta.key,
            correlation_id=request.correlationId,
            reason="AdmissionDenied" if denied else "KubernetesRejected",
            ledger=ledger,
            owner=finish.owner_of_request(request, key=meta.key, message_id=meta.message_id),
        )
    log.info("created Job %s for key %s", name, meta.key)
    return DispatchResult(Outcome.CREATED, key=meta.key, job_name=name, detail="created")


def _defer(
    message: Inbound,
    settings: Settings,
    request: BatchRequest,
    data: dict[str, Any],
    meta: JobMeta,
    deferral: Deferral | None,
    readiness: Readiness,
    requeue: Requeue,
    now: datetime,
) -> DispatchResult:
    first_seen = meta.enqueued_at or now
    waited = (now - first_seen).total_seconds()
    # A "hopeless" answer (e.g. 403: a role is missing) is trusted only after a grace period:
    # role assignments made by `azd up` can take up to ~10 minutes to apply in Azure.
    hopeless = readiness.hopeless and waited >= settings.permission_grace_seconds
    if hopeless or waited >= settings.bootstrap_max_wait_seconds:
        why = "cannot become ready" if hopeless else f"not ready after {int(waited)} s"
        detail = f"the cluster {why}: {readiness.reason}"
        return _waited_too_long(
            message, settings, request, meta, first_seen, now, reason="ClusterNotReady", detail=detail
        )
    count = (deferral.count if deferral else 0) + 1
    text = wrap(
        data, key=meta.key, message_id=meta.message_id, first_seen=first_seen, count=count, reason=readiness.reason
    )
    requeue(text, settings.bootstrap_defer_seconds)
    log.info(
        "cluster not ready (%s): key %s deferred %d s (deferral %d)",
        readiness.reason,
        meta.key,
        settings.bootstrap_defer_seconds,
        count,
    )
    return DispatchResult(Outcome.DEFERRED, key=meta.key, detail=readiness.reason)


def _waited_too_long(
    message: Inbound,
    settings: Settings,
    request: BatchRequest,
    meta: JobMeta,
    first_seen: datetime,
    now: datetime,
    *,
    reason: str,
    detail: str,
) -> DispatchResult:
    """A deferred request that waited longer than allowed: one ``request.deadlettered`` event."""
    event = events.request_deadlettered(
        source=settings.event_source,
        body=message.body,
        now=now,
        reason=reason,
        detail=detail,
        queue=settings.requests_queue,
        key=meta.key,
        correlation_id=request.correlationId,
        message_id=meta.message_id,
        enqueued_at=first_seen,
    )
    log.error("dead-lettering key %s: %s", meta.key, detail)
    return DispatchResult(
        Outcome.DEADLETTERED,
        key=meta.key,
        job_name=job_name(meta.key, settings=settings),
        detail=detail,
        events=[event],
        reason=reason,
    )


def _id_reused(
    message: Inbound, settings: Settings, request: BatchRequest, meta: JobMeta, now: datetime, *, where: str
) -> DispatchResult:
    """A message whose id is another request's (``where`` says which): rejected as itself."""
    error = FieldError(
        "id", f"id {meta.key!r} was already used for a different request ({where}); use a new id for new work"
    )
    reason = "IdReused"
    return _rejected(
        message, settings, [error], now, key=None, correlation_id=request.correlationId, reason=reason, claimed=meta.key
    )


def _invalid(
    message: Inbound,
    settings: Settings,
    data: dict[str, Any] | None,
    deferral: Deferral | None,
    errors: list[FieldError],
    now: datetime,
    ledger: Ledger | None,
    *,
    forged: bool = False,
) -> DispatchResult:
    """A message that is no valid request: rejected under its own key (``finish.owner_of_invalid``:
    never a raw value; a forged envelope's message under its message id alone), echoing an
    invalid ``id``/``correlationId`` escaped and bounded."""
    owner = finish.owner_of_invalid(data, message_id=message.message_id, deferral=deferral, forged=forged)
    cid = as_correlation_id((data or {}).get("correlationId"))
    claimed = as_key((data or {}).get("id")) if forged else None
    return _rejected(
        message,
        settings,
        errors,
        now,
        key=owner.key,
        correlation_id=cid,
        ledger=ledger,
        owner=owner,
        raw=finish.raw_ids(data),
        claimed=claimed if claimed != owner.key else None,
    )


def _rejected(
    message: Inbound,
    settings: Settings,
    errors: list[FieldError],
    now: datetime,
    *,
    key: str | None = None,
    correlation_id: str | None = None,
    reason: str = "InvalidRequest",
    ledger: Ledger | None = None,
    owner: Owner | None = None,
    raw: tuple[str | None, str | None] = (None, None),
    claimed: str | None = None,
) -> DispatchResult:
    """One ``request.rejected`` event, claimed first for ``owner``'s record (``shared.flows.finish``).

    No ``owner``: the message owns no record (its id is another request's: ``IdReused``), and
    a claim that finds the key another request's (foreign) too: the event is then about the
    message (subject = message id, the id in ``claimedKey``), never about that request, and the
    ledger is not touched. ``claimed``: an id named besides the message's own key (a forged
    envelope's)."""
    ended = finish.reject(
        settings=settings,
        ledger=ledger,
        message_id=message.message_id,
        body=message.body,
        dequeue_count=message.dequeue_count,
        errors=errors,
        now=now,
        key=key,
        correlation_id=correlation_id,
        reason=reason,
        owner=owner,
        raw=raw,
        claimed=claimed,
    )
    detail = clean("; ".join(f"{e.field}: {e.message}" for e in bounded(errors)), 2000)
    log.warning("rejected message %s: %s", clean(message.message_id, 256), detail)
    return DispatchResult(Outcome.REJECTED, key=ended.key, detail=detail, events=ended.events, reason=reason)


__all__ = ["ClusterGate", "DispatchResult", "Inbound", "Outcome", "PermanentError", "Readiness", "dispatch"]
