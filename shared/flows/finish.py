"""How the queue path ends a request: build the event, claim it in the ledger, send only if the
claim says so (``shared.ledger.outcome_writer`` explains the claim and why it comes first).

dispatch calls :func:`reject` and :func:`give_up` at every point that ends a request, and
:func:`replay` when a message meets a record that its own earlier delivery already ended (the
crash between the claim and the host writing the event: the same event, the same id, again).
The deadletter function and the reconciler claim through ``shared.ledger.tracking`` directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.base.errors import FieldError
from shared.base.text import raw_value
from shared.config.settings import Settings
from shared.intake.deferral import Deferral
from shared.intake.request import BatchRequest, as_correlation_id, as_key
from shared.ledger import tracking
from shared.ledger.outcome_writer import Claim, Verdict, unsent
from shared.ledger.records import Record, State
from shared.ledger.store import Ledger
from shared.outcomes import events

log = logging.getLogger("vnode_batch.dispatch")


@dataclass(frozen=True)
class Owner:
    """The ledger record a message may end: its key, how to tell that the record holds this
    message's request, and (for a new record) the request and its original message id."""

    key: str
    owns: Callable[[Record], bool]
    request: BatchRequest | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class Ended:
    """What to send (empty: the request already had its outcome) and the claim's verdict."""

    events: list[str]
    claim: Claim | None = None
    key: str | None = None
    """The request key the event names (None: it is about the message only)."""


def claimant(message_id: str) -> str:
    return f"message:{message_id}"


def owner_of_request(request: BatchRequest, *, key: str, message_id: str) -> Owner:
    return Owner(key=key, owns=tracking.same_request(request), request=request, message_id=message_id)


def owner_of_invalid(
    data: dict[str, Any] | None, *, message_id: str, deferral: Deferral | None, forged: bool = False
) -> Owner:
    """An invalid message's key: its ``id`` if that is a valid key, else its (trusted) envelope's
    key, else its own message id — a raw value that is not a valid key never becomes one. It
    ends only a record its own message (or its envelope's first message) made. A forged envelope
    is keyed by its message id alone: nothing in it is to be trusted."""
    if forged:
        return Owner(key=message_id, owns=tracking.same_message(message_id), message_id=message_id)
    raw = (data or {}).get("id")
    first = deferral.message_id if deferral is not None else message_id
    key = as_key(raw) or (deferral.key if deferral is not None else None) or message_id
    return Owner(key=key, owns=tracking.same_message(message_id, first), message_id=first)


def raw_ids(data: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """An ``id``/``correlationId`` that was sent but is not valid, escaped and bounded."""
    data = data or {}
    raw_id, raw_cid = data.get("id"), data.get("correlationId")
    return (
        raw_value(raw_id) if "id" in data and as_key(raw_id) is None else None,
        raw_value(raw_cid) if "correlationId" in data and as_correlation_id(raw_cid) is None else None,
    )


def reject(
    *,
    settings: Settings,
    ledger: Ledger | None,
    message_id: str,
    body: bytes,
    dequeue_count: int,
    errors: Sequence[FieldError],
    now: datetime,
    key: str | None,
    correlation_id: str | None,
    reason: str,
    owner: Owner | None,
    raw: tuple[str | None, str | None] = (None, None),
    claimed: str | None = None,
) -> Ended:
    """A ``request.rejected`` event about this message, claimed for ``owner``'s record first.

    ``owner`` None, or a claim that finds the key another request's (``Verdict.FOREIGN``): the
    event is about the message only (``requestKey`` null, the id in ``claimedKey``: issue 19)
    and the ledger is not touched. A lost claim (the request already ended) sends nothing."""
    claim: Claim | None = None
    if ledger is not None and owner is not None:
        claim = tracking.rejected(
            ledger,
            key=owner.key,
            errors=errors,
            reason=reason,
            correlation_id=correlation_id,
            message_id=owner.message_id,
            now=now,
            event_id=events.rejected_id(message_id),
            claimed_by=claimant(message_id),
            owns=owner.owns,
            request=owner.request,
        )
        if not claim.send:
            log.info(
                "key %s already ended (%s): no rejection event for message %s", owner.key, _state(claim), message_id
            )
            return Ended([], claim, owner.key)
        if claim.verdict is Verdict.FOREIGN:
            key, claimed = None, owner.key
    text = events.request_rejected(
        source=settings.event_source,
        message_id=message_id,
        body=body,
        errors=errors,
        now=now,
        key=key,
        correlation_id=correlation_id,
        reason=reason,
        dequeue_count=dequeue_count,
        claimed_key=claimed,
        raw_id=raw[0],
        raw_correlation_id=raw[1],
    )
    return Ended([text], claim, key)


def give_up(
    *,
    ledger: Ledger | None,
    text: str,
    message_id: str,
    key: str,
    reason: str,
    detail: str,
    request: BatchRequest,
    original_message_id: str,
    now: datetime,
) -> Ended:
    """Claim ``dead-lettered`` for a request that waited too long (its event already built)."""
    if ledger is None:
        return Ended([text])
    claim = tracking.deadlettered(
        ledger,
        key=key,
        reason=reason,
        detail=detail,
        correlation_id=request.correlationId,
        message_id=original_message_id,
        now=now,
        event_id=events.deadlettered_id(key=key, body=b""),
        claimed_by=claimant(message_id),
        owns=tracking.same_request(request),
        request=request,
    )
    return Ended([text] if claim.send else [], claim)


def replay(
    record: Record,
    *,
    settings: Settings,
    message_id: str,
    body: bytes,
    dequeue_count: int,
    original_message_id: str,
    first_seen: datetime | None,
    now: datetime,
) -> list[str]:
    """The event to send again for a record this very queue message ended before (a crash after
    the claim, before the host wrote the event), or a cancel's event not known sent; else none."""
    pending = unsent(record)
    if pending is not None:
        return [pending]
    outcome = record.outcome or {}
    if not record.terminal or outcome.get("claimedBy") != claimant(message_id):
        return []
    if record.state == State.REJECTED:
        errors = [FieldError(str(e.get("field")), str(e.get("message"))) for e in record.errors]
        return [
            events.request_rejected(
                source=settings.event_source,
                message_id=message_id,
                body=body,
                errors=errors or [FieldError("$", record.reason or "rejected")],
                now=now,
                key=record.key,
                correlation_id=record.correlation_id,
                reason=str(outcome.get("reason") or record.reason or "InvalidRequest"),
                dequeue_count=dequeue_count,
            )
        ]
    if record.state == State.DEADLETTERED:
        return [
            events.request_deadlettered(
                source=settings.event_source,
                body=body,
                now=now,
                reason=str(outcome.get("reason") or "ClusterNotReady"),
                detail=record.reason or "",
                queue=settings.requests_queue,
                key=record.key,
                correlation_id=record.correlation_id,
                message_id=original_message_id,
                enqueued_at=first_seen,
            )
        ]
    return []


def _state(claim: Claim) -> str:
    return claim.record.state.value if claim.record is not None else "unknown"
