"""Dead-letter: every message in ``<requests>-poison`` becomes one ``request.deadlettered`` event.

What the poison copy can tell. The host moves a message it gave up on by sending its body to
``<queue>-poison`` as a new message (azure-sdk-for-net
``Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/QueueProcessor.cs``
``CopyMessageToPoisonQueueAsync``): new id, new insertion time, dequeue count starting again,
nothing else of the original. So the event identifies the *request* (its key, read from the
body) and never the copy, and says nothing about how often dispatch was tried.

Why this must never fail. A queue whose name ends in ``-poison`` has no poison queue of its
own (``Microsoft.Azure.WebJobs.Extensions.Storage.Queues/src/Listeners/QueueListenerFactory.cs``
``CreatePoisonQueueReference``); a failed invocation leaves the message invisible until its
lease lapses (``QueueProcessor.CompleteProcessingMessageAsync`` does not release it), and past
``maxDequeueCount`` ``BeginProcessingMessageAsync`` skips it without deleting it: no function
sees it again and no event is ever sent. So any body at all — empty, binary, not JSON, JSON
of the wrong shape, over 64 KiB — still yields exactly one event here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from shared.base.errors import VnbError
from shared.base.times import iso
from shared.config.settings import Settings
from shared.flows import finish
from shared.flows.inbound import Inbound
from shared.intake.decode import decode_body
from shared.intake.deferral import unwrap
from shared.intake.request import BatchRequest, RequestInvalid, as_correlation_id, as_key, parse_request
from shared.ledger import tracking
from shared.ledger.outcome_writer import Claim
from shared.ledger.records import Record
from shared.ledger.store import Ledger
from shared.outcomes import events

log = logging.getLogger("vnode_batch.deadletter")

DETAIL = (
    "the host moved this message to the poison queue after the dispatch function failed on it "
    "maxDequeueCount times (host.json). The exceptions are in the function logs (Application "
    "Insights): search them for the request key, or around poisonedAt when there is none."
)


@dataclass(frozen=True)
class Identity:
    """What a poisoned body says about its request; ``None`` for what it does not say."""

    key: str | None = None
    correlation_id: str | None = None
    message_id: str | None = None
    first_seen: datetime | None = None


def identify(body: bytes) -> Identity:
    """The request a poisoned body belongs to, as far as the body can be read. Never raises.

    The key is the request's ``id`` (when it is a valid id), or, for a request the app had
    deferred while waiting for the cluster, the key in its deferral envelope (the first
    message id of a request without ``id``). A request without ``id`` that was never
    deferred has no key here: its key was the id of a message the poison copy does not carry.
    """
    data, _ = decode_body(body)
    if data is None:
        return Identity()
    request, deferral = unwrap(data)
    key = as_key(request.get("id"))
    correlation_id = as_correlation_id(request.get("correlationId"))
    if deferral is None:
        return Identity(key=key, correlation_id=correlation_id)
    return Identity(
        key=key or as_key(deferral.key),
        correlation_id=correlation_id,
        message_id=as_key(deferral.message_id),
        first_seen=deferral.first_seen,
    )


def deadletter(message: Inbound, *, settings: Settings, now: datetime, ledger: Ledger | None = None) -> str | None:
    """The ``request.deadlettered`` event (CloudEvents JSON text) for one poison-queue message,
    or None when the ledger says its request already ended otherwise (one outcome per request:
    a poisoned duplicate of a request that ran, was cancelled or rejected sends nothing).

    ``message.inserted_at`` is when the host wrote the poison copy (``poisonedAt``);
    ``message.message_id`` and ``message.dequeue_count`` belong to the copy and are not used.
    The event id is ``events.deadlettered_id``: the same for every copy of one request, so a
    copy after a crash between the claim and the send sends it again (a REPEAT claim).
    """
    who = identify(message.body)
    event = events.request_deadlettered(
        source=settings.event_source,
        body=message.body,
        now=now,
        reason="MaxDequeueCountExceeded",
        detail=DETAIL,
        queue=settings.poison_queue,
        key=who.key,
        correlation_id=who.correlation_id,
        message_id=who.message_id,
        enqueued_at=_utc_or_none(who.first_seen),
        poisoned_at=message.inserted_at,
    )
    # ledger: ends a waiting request; a submitted one is the reconciler's
    event_id = events.deadlettered_id(key=who.key, body=message.body)
    if ledger is not None and who.key:
        claim = _record(ledger, who, message.body, settings, now, event_id)
        if claim is not None and not claim.send:
            # The request ended otherwise. Its own event may still be owed: a cancel's not known
            # sent, or one claimed by a delivery of this very body that crashed before the host
            # wrote it (``shared.flows.finish.replay``: the same id again). Else nothing.
            again = _owed(claim.record, message, who, settings, now)
            log.warning("a poisoned copy of key %s: the request already ended otherwise", who.key)
            return again
    log.error(
        "a request was poisoned: key %s, %d-byte body, poison copy %s",
        who.key or "unknown",
        len(message.body),
        message.message_id,
    )
    return event


def _owed(record: Record | None, message: Inbound, who: Identity, settings: Settings, now: datetime) -> str | None:
    if record is None:
        return None
    claimed = str((record.outcome or {}).get("claimedBy") or "")
    again = finish.replay(
        record,
        settings=settings,
        message_id=claimed.removeprefix("message:") if claimed.startswith("message:") else "",
        body=message.body,
        dequeue_count=1,
        original_message_id=who.message_id or "",
        first_seen=_utc_or_none(who.first_seen),
        now=now,
    )
    return again[0] if again else None


def _record(
    ledger: Ledger, who: Identity, body: bytes, settings: Settings, now: datetime, event_id: str
) -> Claim | None:
    """Claim ``dead-lettered`` (``claim.send`` False: the request already has another outcome, or
    a Job the reconciler reports). Best effort: this function must never fail (module
    docstring), so a ledger outage is logged, None returned, and the event goes out unrecorded."""
    assert who.key is not None
    request = _request(body, settings)
    try:
        claim = tracking.deadlettered(
            ledger,
            key=who.key,
            reason="MaxDequeueCountExceeded",
            detail="MaxDequeueCountExceeded",
            correlation_id=who.correlation_id,
            message_id=who.message_id,
            now=now,
            event_id=event_id,
            claimed_by="poison",
            owns=tracking.same_request(request) if request else tracking.same_message(who.message_id),
            request=request,
        )
    except VnbError as e:
        log.warning("key %s: recording dead-lettered in the ledger failed: %s", who.key, e)
        return None
    except Exception:  # never fail this function: see the module docstring
        log.exception("key %s: recording dead-lettered in the ledger failed", who.key)
        return None
    return claim


def _request(body: bytes, settings: Settings) -> BatchRequest | None:
    """The poisoned body's request, when it is a valid one (to tell its own record by content)."""
    data, _ = decode_body(body)
    if data is None:
        return None
    try:
        return parse_request(unwrap(data)[0], settings=settings)
    except RequestInvalid:
        return None


def _utc_or_none(moment: datetime | None) -> datetime | None:
    """A deferral envelope's time, if it can be written as RFC 3339 UTC (it came from a body)."""
    if moment is None:
        return None
    try:
        iso(moment)
    except (OverflowError, ValueError):  # e.g. year 1 with a negative offset
        return None
    return moment
