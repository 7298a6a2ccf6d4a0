"""Dispatch's answers that end or postpone a message without a Job: rejections (through the one
outcome writer), deferrals with their envelope, and the wait bounds."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from shared.base.errors import FieldError, bounded
from shared.base.handles import MessageHandle
from shared.base.text import clean
from shared.cluster.readiness import Readiness, Requeue
from shared.config.settings import Settings
from shared.flows import finish
from shared.flows.finish import Owner
from shared.flows.inbound import DispatchResult, Inbound, Outcome
from shared.intake.deferral import Deferral, wrap
from shared.intake.request import BatchRequest, as_correlation_id, as_key
from shared.job.render import JobMeta, job_name
from shared.ledger import tracking
from shared.ledger.store import Ledger
from shared.outcomes import events

log = logging.getLogger("vnode_batch.dispatch")


def longest_wait(settings: Settings, deferral: Deferral) -> int:
    """How long ago a genuine envelope's request can have been first seen: a deferral is written
    only while the request waited less than the longer wait (cluster or capacity); a capacity
    give-back (``capacityAttempts`` ≥ 1) follows a Job that sat in a backlog and ran for any time,
    so only the ledger's retention bounds it (past that the ledger has forgotten the key)."""
    if deferral.capacity_attempts > 0:
        return max(settings.ledger_retention_seconds, settings.capacity_max_wait_seconds)
    return max(settings.bootstrap_max_wait_seconds, settings.capacity_max_wait_seconds)


def track_wait(
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
    wake: MessageHandle | None = None,
) -> None:
    """ledger: ``waiting-for-cluster``/``waiting-for-capacity`` after a re-enqueue (``queue``: its
    position and estimated start; ``wake``: the new message's handle), or ``dead-lettered`` after
    the wait ran out."""
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
            wake=wake,
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


def defer(
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
        return waited_too_long(
            message, settings, request, meta, first_seen, now, reason="ClusterNotReady", detail=detail
        )
    count = (deferral.count if deferral else 0) + 1
    text = wrap(
        data,
        key=meta.key,
        message_id=meta.message_id,
        first_seen=first_seen,
        count=count,
        reason=readiness.reason,
        trace=meta.trace,
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


def waited_too_long(
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


def id_reused(
    message: Inbound, settings: Settings, request: BatchRequest, meta: JobMeta, now: datetime, *, where: str
) -> DispatchResult:
    """A message whose id is another request's (``where`` says which): rejected as itself."""
    error = FieldError(
        "id", f"id {meta.key!r} was already used for a different request ({where}); use a new id for new work"
    )
    reason = "IdReused"
    return rejected(
        message, settings, [error], now, key=None, correlation_id=request.correlationId, reason=reason, claimed=meta.key
    )


def invalid(
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
    return rejected(
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


def rejected(
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
