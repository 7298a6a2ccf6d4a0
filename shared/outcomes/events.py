"""CloudEvents 1.0 (structured JSON) for every request outcome (pure: values, no I/O).

Delivery is at-least-once, so every event has an ``id`` that is stable per outcome: the
same outcome reported twice (a redelivered message, a reconciler that crashed between
sending and marking) carries the same id, and consumers de-duplicate on it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from shared.base.errors import FieldError, bounded
from shared.base.text import clean
from shared.base.times import iso
from shared.secrets.scrub import scrub_body

TYPE_PREFIX: Final = "io.vnodebatch"
JOB_SUCCEEDED: Final = f"{TYPE_PREFIX}.job.succeeded"
JOB_FAILED: Final = f"{TYPE_PREFIX}.job.failed"
REQUEST_REJECTED: Final = f"{TYPE_PREFIX}.request.rejected"
REQUEST_DEADLETTERED: Final = f"{TYPE_PREFIX}.request.deadlettered"
REQUEST_CANCELLED: Final = f"{TYPE_PREFIX}.request.cancelled"
JOB_CANCELLED: Final = f"{TYPE_PREFIX}.job.cancelled"
EVENT_TYPES: Final = (
    JOB_SUCCEEDED,
    JOB_FAILED,
    REQUEST_REJECTED,
    REQUEST_DEADLETTERED,
    REQUEST_CANCELLED,
    JOB_CANCELLED,
)
DATA_SCHEMA_BASE: Final = "https://vnode-batch.dev/schemas/events"

# An event is one queue message: 64 KiB at most. Keep headroom for the envelope.
MAX_EVENT_BYTES: Final = 60 * 1024


def stable_id(event_type: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join((event_type, *parts)).encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:32]


def envelope(
    *,
    event_type: str,
    event_id: str,
    source: str,
    subject: str | None,
    time: datetime,
    data: dict[str, Any],
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": iso(time),
        "datacontenttype": "application/json",
        "dataschema": f"{DATA_SCHEMA_BASE}/{event_type.removeprefix(TYPE_PREFIX + '.')}.v1.json",
        "data": data,
    }
    if subject:
        event["subject"] = subject
    return event


def encode(event: dict[str, Any]) -> str:
    """The queue message text of an event (compact JSON, UTF-8)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def _with_body(event: dict[str, Any], body: bytes) -> dict[str, Any]:
    """Attach the original message body, truncated so the event still fits one message.

    Env values are masked (``shared.secrets.scrub``): the echo carries env names, not values."""
    data = event["data"]
    data["bodySize"] = len(body)
    body = scrub_body(body)
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    budget = max(MAX_EVENT_BYTES - len(encode(event).encode()) - 64, 0)
    if text is not None:
        encoded = json.dumps(text, ensure_ascii=False)
        if len(encoded.encode()) <= budget:
            data["body"] = text
            data["bodyTruncated"] = False
            return event
        # cut on a character boundary, leaving room for JSON escaping of the kept part
        cut = text.encode()[: budget // 2].decode("utf-8", errors="ignore")
        while cut and len(json.dumps(cut, ensure_ascii=False).encode()) > budget:
            cut = cut[: len(cut) * 3 // 4]
        data["body"] = cut
        data["bodyTruncated"] = True
        return event
    kept = body[: budget * 3 // 4]
    data["bodyBase64"] = base64.b64encode(kept).decode()
    data["bodyTruncated"] = len(kept) < len(body)
    return event


def request_rejected(
    *,
    source: str,
    message_id: str,
    body: bytes,
    errors: Sequence[FieldError],
    now: datetime,
    key: str | None = None,
    correlation_id: str | None = None,
    reason: str = "InvalidRequest",
    dequeue_count: int | None = None,
    claimed_key: str | None = None,
    raw_id: str | None = None,
    raw_correlation_id: str | None = None,
) -> str:
    """A request that can never become a Job: field errors plus the original body.

    ``claimed_key``: the id the message claimed when that id is another request's (``IdReused``,
    or an invalid message naming a known key). It goes into ``claimedKey`` only; ``requestKey``
    is then null and the subject is the message id, so a consumer keyed on the subject or the
    request key never sees the other request rejected.

    Every echoed string is valid UTF-8 and bounded, and the errors are capped
    (``shared.base.errors.bounded``), so the event always fits one queue message whatever was
    sent. ``raw_id``/``raw_correlation_id``: an ``id``/``correlationId`` that is not a valid one,
    as escaped JSON text (``shared.base.text.raw_value``); it never becomes the key.
    """
    key, correlation_id = _opt_clean(key), _opt_clean(correlation_id)
    data: dict[str, Any] = {
        "reason": reason,
        "messageId": clean(message_id, 256),
        "requestKey": key,
        "correlationId": correlation_id,
        "errors": [e.as_dict() for e in bounded(errors) or [FieldError("$", "invalid")]],
        "rejectedAt": iso(now),
    }
    if dequeue_count is not None:
        data["dequeueCount"] = dequeue_count
    if claimed_key is not None:
        data["claimedKey"] = claimed_key
    if raw_id is not None:
        data["rawId"] = clean(raw_id, 256)
    if raw_correlation_id is not None:
        data["rawCorrelationId"] = clean(raw_correlation_id, 256)
    event = envelope(
        event_type=REQUEST_REJECTED,
        event_id=rejected_id(message_id),
        source=source,
        subject=key or message_id,
        time=now,
        data=data,
    )
    return encode(_with_body(event, body))


def rejected_id(message_id: str) -> str:
    """The ``id`` of the ``request.rejected`` event of one queue message (its redeliveries too)."""
    return stable_id(REQUEST_REJECTED, message_id)


def _opt_clean(text: str | None) -> str | None:
    return None if text is None else clean(text, 256)


def deadlettered_id(*, key: str | None, body: bytes) -> str:
    """The ``id`` of a request's ``request.deadlettered`` event (32 hex characters).

    One per request: from the request key when it is known, else from the SHA-256 of the body.
    Not from the message id: the host's poison copy is a new message with a new id
    (azure-sdk-for-net ``Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/
    QueueProcessor.cs`` ``CopyMessageToPoisonQueueAsync`` sends ``message.Body`` only), and
    ``HandlePoisonMessageAsync`` copies, then deletes: when the delete does not happen (lease
    lost, host restarted), the original comes back past ``maxDequeueCount`` and
    ``BeginProcessingMessageAsync`` copies it again. Two poison copies of one request give one id.
    """
    if key:
        return stable_id(REQUEST_DEADLETTERED, "key", key)
    return stable_id(REQUEST_DEADLETTERED, "body", hashlib.sha256(body).hexdigest())


def request_deadlettered(
    *,
    source: str,
    body: bytes,
    now: datetime,
    reason: str,
    detail: str,
    queue: str,
    key: str | None = None,
    correlation_id: str | None = None,
    message_id: str | None = None,
    enqueued_at: datetime | None = None,
    poisoned_at: datetime | None = None,
) -> str:
    """A request the app gave up on: poisoned by the host, or waited too long for a cluster.
    (Echoed strings are cleaned and bounded, as in :func:`request_rejected`.)

    ``key``, ``message_id`` (the request's original message) and ``enqueued_at`` (when the
    request was first seen) are ``None`` when the caller cannot know them, and appear as
    ``null``; ``poisoned_at`` is when the host wrote the poison copy. The body is kept,
    truncated so the event fits one queue message (``MAX_EVENT_BYTES``).
    """
    key, correlation_id, message_id = _opt_clean(key), _opt_clean(correlation_id), _opt_clean(message_id)
    data: dict[str, Any] = {
        "reason": reason,
        "detail": clean(detail, 4096),
        "queue": queue,
        "requestKey": key,
        "correlationId": correlation_id,
        "messageId": message_id,
        "enqueuedAt": iso(enqueued_at) if enqueued_at else None,
        "poisonedAt": iso(poisoned_at) if poisoned_at else None,
        "deadletteredAt": iso(now),
    }
    event = envelope(
        event_type=REQUEST_DEADLETTERED,
        event_id=deadlettered_id(key=key, body=body),
        source=source,
        subject=key or message_id,
        time=now,
        data=data,
    )
    return encode(_with_body(event, body))


def job_succeeded(
    *, source: str, job_uid: str, subject: str | None, finished_at: datetime, data: dict[str, Any]
) -> str:
    """A Job that completed. ``data`` comes from ``shared.outcomes.outcome.event_data``."""
    return _job_event(JOB_SUCCEEDED, source=source, job_uid=job_uid, subject=subject, time=finished_at, data=data)


def job_failed(*, source: str, job_uid: str, subject: str | None, finished_at: datetime, data: dict[str, Any]) -> str:
    """A Job that failed, got stuck Pending, or was deleted before it finished."""
    return _job_event(JOB_FAILED, source=source, job_uid=job_uid, subject=subject, time=finished_at, data=data)


def _job_event(
    event_type: str, *, source: str, job_uid: str, subject: str | None, time: datetime, data: dict[str, Any]
) -> str:
    # The id depends on the Job's uid and the outcome only: a reconciler that crashed after
    # sending and before marking the Job sends the very same id again on its next pass.
    # ``time`` is when the Job finished (not when the event was built), for the same reason.
    event = envelope(
        event_type=event_type,
        event_id=stable_id(event_type, job_uid),
        source=source,
        subject=subject,
        time=time,
        data=data,
    )
    return encode(_fit_logs(event))


def _fit_logs(event: dict[str, Any]) -> dict[str, Any]:
    """Shrink the log tails (keeping their ends), then drop them, then cut the message,
    until the event fits one queue message. The outcome itself is never cut."""
    data = event["data"]
    tails: list[dict[str, Any]] = data.get("logTail") or []
    while len(encode(event).encode()) > MAX_EVENT_BYTES:
        longest = max(tails, key=lambda t: len(t["text"].encode()), default=None)
        if longest is not None and len(longest["text"].encode()) > 256:
            raw = longest["text"].encode()
            longest["text"] = raw[len(raw) // 2 :].decode("utf-8", errors="ignore")
            longest["truncated"] = True
        elif tails:
            tails.pop()
        elif len(data.get("message") or "") > 256:
            data["message"] = data["message"][: len(data["message"]) // 2] + " …"
        else:
            break  # nothing left to cut: the caller's data is unusually large in its fixed fields
    return event


# --- cancellation (DELETE /api/requests/{id}) ---------------------------------------------


def request_cancelled(
    *, source: str, key: str, now: datetime, state: str, correlation_id: str | None, received_at: str | None
) -> str:
    """A request cancelled before it had a Job: it never runs. One per key (stable id)."""
    data: dict[str, Any] = {
        "requestKey": key,
        "correlationId": correlation_id,
        "state": state,
        "receivedAt": received_at,
        "cancelledAt": iso(now),
    }
    event = envelope(
        event_type=REQUEST_CANCELLED,
        event_id=stable_id(REQUEST_CANCELLED, key),
        source=source,
        subject=key,
        time=now,
        data=data,
    )
    return encode(event)


def job_cancelled(*, source: str, key: str, job_uid: str | None, now: datetime, data: dict[str, Any]) -> str:
    """A request whose Job was deleted on request; ``data`` says what ran (``shared.ledger.api``)."""
    event = envelope(
        event_type=JOB_CANCELLED,
        event_id=stable_id(JOB_CANCELLED, key, job_uid or ""),
        source=source,
        subject=key,
        time=now,
        data=data,
    )
    return encode(event)
