"""Dead-letter: every message in ``<requests>-poison`` becomes one ``request.deadlettered`` event.

What the poison copy can tell. The host moves a message it gave up on by sending its body to
``<queue>-poison`` as a new message (azure-sdk-for-net
``Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/QueueProcessor.cs``
``CopyMessageToPoisonQueueAsync``): new id, new insertion time, dequeue count starting again,
nothing else of the original. So the event identifies the *request* (its key, read from the
body) and never the copy, and says nothing about how often dispatch was tried.

Why this must not fail, and the one case where it does. A queue whose name ends in
``-poison`` has no poison queue of its own
(``Microsoft.Azure.WebJobs.Extensions.Storage.Queues/src/Listeners/QueueListenerFactory.cs``
``CreatePoisonQueueReference``); a failed invocation leaves the message invisible until its
lease lapses (``Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/
QueueProcessor.cs`` ``CompleteProcessingMessageAsync``: no ``ReleaseMessageAsync`` without a
poison queue), and once its dequeue count exceeds ``maxDequeueCount``
``BeginProcessingMessageAsync`` skips it without deleting it (``HandlePoisonMessageAsync`` does
nothing without a poison queue): no function sees it again and no event is ever sent. So any
body at all — empty, binary, not JSON, JSON of the wrong shape, over 64 KiB — yields an event
here, and what the body cannot tell never raises.

Never an outcome the ledger does not hold. A poisoned request may still have other deliveries
in flight (a producer's duplicates, a client's retried POST): if this function sent
``request.deadlettered`` without recording it, one of them could later create the Job and a
second outcome would follow. So when the claim cannot be made (Table storage down) nothing is
sent: the body is *parked*, sent again to the poison queue as a new message (``PARK_SECONDS``
invisible, a fresh dequeue count) and this invocation completes; the copy tries again later,
for as long as the outage lasts. Only when the park itself fails does the invocation raise, so
the host tries the same message again after its lease (at most ``maxDequeueCount`` times in
all). A crash after the park and before the host deletes this message leaves two copies: both
claim the same event id (``events.deadlettered_id``), so the later one repeats, never adds, an
outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.base.errors import TransientError
from shared.base.times import iso
from shared.config.settings import Settings
from shared.flows import finish
from shared.flows.inbound import Inbound
from shared.intake.decode import decode_body
from shared.intake.deferral import unwrap
from shared.intake.request import BatchRequest, RequestInvalid, as_correlation_id, as_key, parse_request
from shared.ledger import tracking
from shared.ledger.outcome_writer import Claim, Verdict
from shared.ledger.records import Record
from shared.ledger.store import Ledger
from shared.outcomes import events

log = logging.getLogger("vnode_batch.deadletter")

DETAIL = (
    "the host moved this message to the poison queue after the dispatch function failed on it "
    "maxDequeueCount times (host.json). The exceptions are in the function logs (Application "
    "Insights): search them for the request key, or around poisonedAt when there is none."
)
PARK_SECONDS = 60
"""How long a parked body (its claim could not be made: Table storage down) stays invisible in the
poison queue before the next try: one invocation a minute per parked request during an outage."""

Park = Callable[[bytes, int], object]
"""Send a body to the poison queue again, invisible for the given seconds (raises TransientError)."""


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


def deadletter(
    message: Inbound, *, settings: Settings, now: datetime, ledger: Ledger | None = None, park: Park | None = None
) -> str | None:
    """The ``request.deadlettered`` event (CloudEvents JSON text) for one poison-queue message,
    or None: when the ledger says its request already ended otherwise (one outcome per request:
    a poisoned duplicate of a request that ran, was cancelled or rejected sends nothing), or when
    the claim could not be made and the body was parked (module docstring).

    ``message.inserted_at`` is when the host wrote the poison copy (``poisonedAt``; for a parked
    copy, when it was parked); ``message.message_id`` and ``message.dequeue_count`` belong to
    the copy and are not used. The event id is ``events.deadlettered_id``: the same for every
    copy of one request, so a copy after a crash between the claim and the send sends it again
    (a REPEAT claim). A body reusing the id of another request the ledger holds (a FOREIGN
    claim) gets an event about the body only: ``requestKey`` null, its id from the body.

    Raises :class:`TransientError` when the ledger is down and ``park`` failed too (or is None):
    the host tries the message again after its lease.
    """
    who = identify(message.body)
    key = who.key
    # ledger: ends a waiting request; a submitted one is the reconciler's
    if ledger is not None and who.key:
        try:
            claim = _record(ledger, who, message.body, settings, now, events.deadlettered_id(key=who.key, body=b""))
        except TransientError as e:
            # Sending now would be an outcome the ledger does not hold while other deliveries of
            # the key may still run (module docstring): park the body, or let the host retry.
            if park is None:
                raise
            park(message.body, PARK_SECONDS)
            log.warning(
                "key %s: the ledger is unavailable (%s); the poisoned body is parked for %ds", key, e, PARK_SECONDS
            )
            return None
        if not claim.send:
            # The request ended otherwise. Its own event may still be owed: a cancel's not known
            # sent, or one claimed by a delivery of this very body that crashed before the host
            # wrote it (``shared.flows.finish.replay``: the same id again). Else nothing.
            again = _owed(claim.record, message, who, settings, now)
            log.warning("a poisoned copy of key %s: the request already ended otherwise", who.key)
            return again
        if claim.verdict is Verdict.FOREIGN:
            key = None  # the key is another request's: this event is about the body alone
    log.error(
        "a request was poisoned: key %s, %d-byte body, poison copy %s",
        who.key or "unknown",
        len(message.body),
        message.message_id,
    )
    return events.request_deadlettered(
        source=settings.event_source,
        body=message.body,
        now=now,
        reason="MaxDequeueCountExceeded",
        detail=DETAIL,
        queue=settings.poison_queue,
        key=key,
        correlation_id=who.correlation_id,
        message_id=who.message_id,
        enqueued_at=_utc_or_none(who.first_seen),
        poisoned_at=message.inserted_at,
    )


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


def _record(ledger: Ledger, who: Identity, body: bytes, settings: Settings, now: datetime, event_id: str) -> Claim:
    """Claim ``dead-lettered`` (``claim.send`` False: the request already has another outcome, or
    a Job the reconciler reports). Raises TransientError when the ledger is unavailable."""
    assert who.key is not None
    request = _request(body, settings)
    return tracking.deadlettered(
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
