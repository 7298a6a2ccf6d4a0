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

import json
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from shared.adapters.kube import AdmissionDenied, AlreadyExists, Cluster, KubePermanentError
from shared.base.conventions import ANN_REQUEST_HASH
from shared.base.errors import FieldError, PermanentError, TransientError
from shared.base.handles import MessageHandle
from shared.capacity import model as capacity
from shared.capacity.admission import Admission, admission_for, whole_budget
from shared.cluster.readiness import ClusterGate, Readiness, Requeue
from shared.config.settings import Settings
from shared.flows import finish, secret_files, take_back, workload_access
from shared.flows.answers import defer, id_reused, invalid, longest_wait, rejected, track_wait, waited_too_long
from shared.flows.inbound import GIVEN_BACK, DispatchResult, Inbound, Outcome
from shared.intake import trace
from shared.intake.decode import decode_body
from shared.intake.deferral import QUEUE_MESSAGE_LIMIT, Deferral, encoded_size, envelope_problems, room, unwrap, wrap
from shared.intake.request import BatchRequest, RequestInvalid, parse_request
from shared.job.render import JobMeta, build_job
from shared.ledger import tracking
from shared.ledger.records import Record, State
from shared.ledger.store import Ledger
from shared.teams.files import teams_for
from shared.teams.model import team_errors
from shared.telemetry import logs, names, signals

log = logging.getLogger("vnode_batch.dispatch")


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

    ``admission``: the capacity view to use (default: this process's for the cluster).

    Telemetry (issue 21): the first delivery of a request is the span ``vnb.request.receive``
    (a child of the producer's ``traceparent`` if it gave a valid one, else of the invocation's
    context); a deferred request's later deliveries are ``vnb.request.wait`` (from its deferral to
    now) and ``vnb.request.dispatch``, children of the request's trace carried in the envelope,
    linked to their own invocation (``shared.telemetry.signals``)."""
    data, errors = decode_body(message.body)
    if data is None:
        return invalid(message, settings, None, None, errors, now(), ledger)
    data, deferral = unwrap(data)
    data, producer = trace.split(data)
    carried = deferral.trace if deferral is not None and deferral.trace.traceparent else None
    if carried is not None and deferral is not None and message.inserted_at is not None:
        attributes: signals.Attributes = {
            names.REASON: deferral.reason,
            names.DEFERRALS: deferral.count,
            names.REQUEST_KEY: deferral.key,
        }
        with signals.span(
            names.SPAN_WAIT,
            parent=carried.traceparent,
            parent_state=carried.tracestate,
            start=message.inserted_at,
            attributes=attributes,
        ):
            pass  # the wait is over: this span only records it
    parent = carried or producer
    with (
        logs.scope(),
        signals.span(
            names.SPAN_DISPATCH if carried else names.SPAN_RECEIVE,
            parent=parent.traceparent,
            parent_state=parent.tracestate,
            attributes={names.DESTINATION: settings.requests_queue, "messaging.message.id": message.message_id},
            consumer=True,
        ) as span,
    ):
        # The request's trace: the one it carries, else this span's (it is the first hop), else
        # the producer's (telemetry off: the ledger still names the producer's trace).
        here = trace.of(span.traceparent, span.tracestate) if span.traceparent else producer
        result = _dispatch(message, data, deferral, carried or here, settings, gate, requeue, now, ledger, admission)
        span.set({names.REQUEST_KEY: result.key or "", "vnb.dispatch.outcome": result.outcome.value})
        return result


def _dispatch(
    message: Inbound,
    data: dict[str, Any],
    deferral: Deferral | None,
    carried: trace.Trace,
    settings: Settings,
    gate: ClusterGate,
    requeue: Requeue,
    now: Callable[[], datetime],
    ledger: Ledger | None,
    admission: Admission | None,
) -> DispatchResult:
    if deferral is not None:  # a forged or damaged envelope: its key and times are not to be trusted
        bad = envelope_problems(
            deferral,
            inserted_at=message.inserted_at,
            now=now(),
            max_wait_seconds=longest_wait(settings, deferral),
            max_capacity_attempts=settings.capacity_max_attempts,
        )
        if bad:
            # A forged envelope's id is not to be trusted either: it names the message alone.
            errors = [FieldError(name, why) for name, why in bad]
            return invalid(message, settings, data, None, errors, now(), ledger, forged=True)
    key_default = deferral.key if deferral else message.message_id
    try:
        request = parse_request(data, settings=settings)
    except RequestInvalid as e:
        return invalid(message, settings, data, deferral, e.errors, now(), ledger)
    key = request.id or key_default
    enqueued_at = deferral.first_seen if deferral else message.inserted_at
    meta = JobMeta(
        key=key,
        message_id=deferral.message_id if deferral else message.message_id,
        enqueued_at=enqueued_at,
        traceparent=carried.traceparent,
        tracestate=carried.tracestate,
    )
    logs.mark(key, meta.traceparent)
    owner = finish.owner_of_request(request, key=key, message_id=meta.message_id)
    spare = room(data, key=meta.key, message_id=meta.message_id, encoding="none")  # adapters/queues.py: plain text

    def refuse(error: FieldError, reason: str = "InvalidRequest") -> DispatchResult:
        """A valid request the app can never run: one ``request.rejected`` for its own key."""
        return rejected(
            message,
            settings,
            [error],
            now(),
            key=meta.key,
            correlation_id=request.correlationId,
            reason=reason,
            ledger=ledger,
            owner=owner,
        )

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
        return refuse(error)
    manifest = build_job(request, meta, settings=settings)
    # --- capacity (issue 11): carry the request and its attempt on the Job; refuse what never fits
    attempt = deferral.capacity_attempts if deferral else 0
    capacity.mark_attempt(manifest, data, attempt)
    demand = capacity.Demand.of_job(manifest)
    too_big = whole_budget(settings).too_big(demand)
    if too_big:
        # Like the size rule above: refused whether or not the cluster is ready now.
        error = FieldError("parallelism" if demand.groups > 1 else "cpu", f"the Job {too_big}; it could never run")
        return refuse(error, "ExceedsCapacity")
    # Teams (issue 22): a queue producer names the team; the teams file says what it may use.
    not_allowed = team_errors(teams_for(settings), request)
    if not_allowed:
        return rejected(
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
            ledger,
            key=key,
            request=request,
            message_id=meta.message_id,
            now=now(),
            source="queue",
            traceparent=meta.traceparent,
        )
        if known.trace_parent and known.trace_parent != meta.traceparent:
            # The ledger names the request's trace (a delivery before this one started it): join it.
            meta = replace(meta, traceparent=known.trace_parent, tracestate=None)
            logs.mark(key, meta.traceparent)
        early = _ledger_says(message, settings, request, meta, known, now(), capacity_retry=attempt > 0)
        if early is not None:
            if known.terminal and message.dequeue_count > 1:
                take_back.leftover(gate, manifest["metadata"]["name"], known)
            return early

    readiness = gate.check()
    if readiness.cluster is None:
        result = defer(message, settings, request, data, meta, deferral, readiness, requeue, now())
        track_wait(ledger, message.message_id, result, request, meta, deferral, now(), capacity_wait=False)
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
        wakeable=ledger is not None,
    )
    if not decision.admitted:
        result, handle = _wait_for_capacity(
            message, settings, request, data, meta, deferral, decision.reason, decision.delay, requeue, now()
        )
        track_wait(
            ledger,
            message.message_id,
            result,
            request,
            meta,
            deferral,
            now(),
            capacity_wait=True,
            queue=decision.queue,
            wake=handle,
        )
        return result
    try:
        # pull Secret fresh; Key Vault files and SAS URLs in the per-request Secret before the Job (issue 17)
        ready = workload_access.prepare(request, manifest, settings=settings, cluster=cluster, now=now())
        if isinstance(ready, workload_access.Refused):
            view.refund(decision.ticket)
            return rejected(
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
        if meta.enqueued_at is not None:
            signals.record(names.CREATE_DURATION, (now() - meta.enqueued_at).total_seconds())
    else:
        view.refund(decision.ticket)
    if result.outcome is Outcome.DEFERRED:  # the previous attempt's Job is still being deleted
        result, _ = _wait_for_capacity(
            message, settings, request, data, meta, deferral, result.detail, 1, requeue, now()
        )
        track_wait(ledger, message.message_id, result, request, meta, deferral, now(), capacity_wait=True)
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
            # event for it (its uid is not the one the ledger recorded). Should this fail (or the
            # create's answer be lost), the redelivery takes it back (``shared.flows.take_back.leftover``).
            take_back.created_after_end(
                cluster, result.job_name, key, f"finished ({record.state}) while a duplicate created it"
            )
            return DispatchResult(
                Outcome.DUPLICATE, key=key, job_name=result.job_name, detail=f"already {record.state}"
            )
    return result


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
        return id_reused(message, settings, request, meta, now, where=f"{known.state} in the ledger")
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
) -> tuple[DispatchResult, MessageHandle | None]:
    """Re-enqueue a request that does not fit yet (with the new message's handle, which the
    reconciler uses to wake it: ``shared.flows.wake``); dead-letter it (CapacityTimeout) after
    VNB_CAPACITY_MAX_WAIT_SECONDS."""
    first_seen = meta.enqueued_at or now
    waited = (now - first_seen).total_seconds()
    if waited >= settings.capacity_max_wait_seconds:
        detail = f"no capacity for {int(waited)} s (VNB_CAPACITY_MAX_WAIT_SECONDS): {reason}"
        ended = waited_too_long(
            message, settings, request, meta, first_seen, now, reason="CapacityTimeout", detail=detail
        )
        return ended, None
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
        trace=meta.trace,
    )
    # Back when the longest wait ends, not a whole sleep (VNB_CAPACITY_SLEEP_SECONDS) or create
    # window later: CapacityTimeout is due then.
    delay = max(1, min(delay, math.ceil(settings.capacity_max_wait_seconds - waited)))
    handle = requeue(text, delay)
    log.info("%s: key %s deferred %d s (deferral %d)", reason, meta.key, delay, count)
    return DispatchResult(Outcome.DEFERRED, key=meta.key, detail=reason), handle


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
        with signals.span(names.SPAN_CREATE, attributes={names.JOB_NAME: name, names.REQUEST_KEY: meta.key}):
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
        return id_reused(message, settings, request, meta, now, where=f"Job {name} in namespace {settings.namespace}")
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
        return rejected(
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


__all__ = ["ClusterGate", "DispatchResult", "Inbound", "Outcome", "PermanentError", "Readiness", "dispatch"]
