"""The envelope of a request that waits for the cluster (pure).

A deferred request (waiting for the cluster or for ACI capacity, or given back by the reconciler
after ACI refused it for capacity) is re-enqueued as a new message, so it gets a new message id.
The envelope carries what must survive that hop: the idempotency key (a request without ``id``
is keyed by its *first* message id, so a retry still finds the same Job), the original
message id and first-seen time (how long it has waited), how often it was deferred, and how
often ACI refused it for capacity.

Size. A queue message is at most 64 KiB: Put Message, "The encoded message can be up to 64
kibibytes (KiB) in size" (learn.microsoft.com/rest/api/storageservices/put-message), counted
as the UTF-8 bytes of the message text (Azurite ``src/queue/handlers/MessagesHandler.ts``
enqueue: ``getUTF8ByteSize(messageText) > MESSAGETEXT_LENGTH_MAX``, 65536, answered
``RequestBodyTooLarge``). With host.json ``messageEncoding: base64`` the text is the base64 of
the bytes, so 48 KiB of payload at most; this app sends plain text (``none``,
shared/adapters/queues.py). The envelope adds bytes to a request, so a request that fits
the queue may not fit once wrapped: :func:`room` says, before any wait, whether the worst-case
envelope of this request still fits; dispatch refuses the request up front when it does not
(the same answer whether or not the cluster is ready at that moment).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from shared.intake import trace as tracing
from shared.intake.request import as_key
from shared.telemetry.tracecontext import TRACESTATE_MAX

ENVELOPE = "vnodeBatchDeferred"
QUEUE_MESSAGE_LIMIT: Final = 64 * 1024
"""Bytes of encoded message text a Storage queue message may carry (see the module docstring)."""
BUDGET: Final = QUEUE_MESSAGE_LIMIT
"""What a wrapped request may use: the documented limit. (Azurite 3.35 sometimes refuses texts
of 2-byte characters a few bytes under it, e.g. ``"é" * 32767`` = 65,534 bytes on one try and
not the next: it seems to miscount a character split across request chunks. The Put Message
docs give no such rule, so it is not modelled; tests near the limit use ASCII.)"""
REASON_MAX: Final = 200
"""Characters of the not-ready reason kept in the envelope (the event carries the full one)."""
_WORST_COUNT: Final = 10**10 - 1
_WORST_FIRST_SEEN: Final = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

_WORST_TRACE: Final = tracing.Trace("00-" + "f" * 32 + "-" + "f" * 16 + "-01", '"' * TRACESTATE_MAX)
"""The largest trace context an envelope can carry: a tracestate of characters JSON escapes."""

CLOCK_SKEW: Final = timedelta(minutes=5)
"""Slack between the Storage service's insertion times and this process's clock."""

Encoding = Literal["none", "base64"]


@dataclass(frozen=True)
class Deferral:
    key: str
    message_id: str
    first_seen: datetime
    count: int
    reason: str
    capacity_attempts: int = 0
    """Times ACI refused this request's pods for quota, capacity or throttling (the reconciler
    gave it back to the queue); 0 for a request that only waited."""
    trace: tracing.Trace = tracing.NONE
    """The request's trace context (issue 21): a forged or damaged one is dropped, not refused."""


def encoded_size(text: str, encoding: Encoding = "none") -> int:
    """Bytes the queue counts for ``text`` sent with host.json's ``messageEncoding``."""
    raw = len(text.encode("utf-8"))
    return raw if encoding == "none" else 4 * math.ceil(raw / 3)


def _reason(reason: str) -> str:
    """At most REASON_MAX printable characters that JSON needs not escape (so the envelope's
    size is bounded by the reason's length)."""
    kept = "".join(c if c.isprintable() and c not in '"\\' else " " for c in reason[:REASON_MAX])
    return kept.encode("ascii", "replace").decode("ascii")


def wrap(
    request: dict[str, Any],
    *,
    key: str,
    message_id: str,
    first_seen: datetime,
    count: int,
    reason: str,
    capacity_attempts: int = 0,
    trace: tracing.Trace = tracing.NONE,
) -> str:
    meta: dict[str, Any] = {
        "key": key,
        "messageId": message_id,
        "firstSeen": first_seen.isoformat(),
        "count": count,
        "reason": _reason(reason),
    }
    if capacity_attempts:
        meta["capacityAttempts"] = capacity_attempts
    if trace.traceparent:
        meta["traceparent"] = trace.traceparent
        if trace.tracestate:
            meta["tracestate"] = trace.tracestate
    return json.dumps({ENVELOPE: meta, "request": request}, separators=(",", ":"), ensure_ascii=False)


def room(request: dict[str, Any], *, key: str, message_id: str, encoding: Encoding = "none") -> int:
    """Bytes to spare under :data:`BUDGET` once ``request`` is wrapped with the
    largest envelope it can ever get (any reason, count, first-seen time); negative when the
    request cannot wait for the cluster."""
    worst = wrap(
        request,
        key=key,
        message_id=message_id,
        first_seen=_WORST_FIRST_SEEN,
        count=_WORST_COUNT,
        reason="x" * 10_000,
        capacity_attempts=_WORST_COUNT,
        trace=_WORST_TRACE,
    )
    return BUDGET - encoded_size(worst, encoding)


def unwrap(data: dict[str, Any]) -> tuple[dict[str, Any], Deferral | None]:
    """Split an envelope into (request, deferral); anything else passes through unchanged."""
    meta = data.get(ENVELOPE)
    request = data.get("request")
    if set(data) != {ENVELOPE, "request"} or not isinstance(meta, dict) or not isinstance(request, dict):
        return data, None
    try:
        deferral = Deferral(
            key=str(meta["key"]),
            message_id=str(meta["messageId"]),
            first_seen=datetime.fromisoformat(str(meta["firstSeen"])),
            count=int(meta["count"]),
            reason=str(meta.get("reason", "")),
            capacity_attempts=int(meta.get("capacityAttempts", 0)),
            trace=tracing.of(meta.get("traceparent"), meta.get("tracestate")),
        )
    except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: int(1e400)
        return data, None  # not ours after all: schema validation will say what is wrong
    return request, deferral


def envelope_problems(
    deferral: Deferral,
    *,
    inserted_at: datetime | None,
    now: datetime,
    max_wait_seconds: int,
    max_capacity_attempts: int | None = None,
) -> list[tuple[str, str]]:
    """(field, message) for each way ``deferral`` differs from any envelope this app writes.

    The envelope arrives on the requests queue like any message, so anyone who can send can
    forge one. Its key becomes the Job's request key, so it follows the request ``id`` rules
    (docs/schemas: ``requestKey`` has minLength 1). Its first-seen time is bounded: the app
    defers only while a request has waited less than ``max_wait_seconds`` (the longer of
    VNB_BOOTSTRAP_MAX_WAIT_SECONDS and VNB_CAPACITY_MAX_WAIT_SECONDS: a request may wait for
    either, the capacity wait being the long one; for a capacity give-back, the ledger retention:
    ``shared.flows.dispatch``), and the message carrying it is inserted when it is deferred, so first-seen is not before that insertion time minus the maximum wait, nor in
    the future (each with :data:`CLOCK_SKEW` to spare). Its counters are what the app counts:
    ``count`` from 1 (at most what :func:`room` sized the envelope for), ``capacityAttempts`` from
    0 to ``max_capacity_attempts`` (VNB_CAPACITY_MAX_ATTEMPTS: one more refusal fails the Job).
    """
    problems: list[tuple[str, str]] = []
    if as_key(deferral.key) is None:
        problems.append(
            (
                f"{ENVELOPE}.key",
                "not a valid request key (the rules of a request `id`: 1-128 characters, letters, digits "
                "and . _ : @ + -, starting and ending with a letter or digit)",
            )
        )
    if as_key(deferral.message_id) is None:
        problems.append((f"{ENVELOPE}.messageId", "not a queue message id (letters, digits and -, 1-128 characters)"))
    if not 1 <= deferral.count <= _WORST_COUNT:
        problems.append((f"{ENVELOPE}.count", f"must be a whole number from 1 to {_WORST_COUNT}"))
    attempts_max = _WORST_COUNT if max_capacity_attempts is None else max_capacity_attempts
    if not 0 <= deferral.capacity_attempts <= attempts_max:
        problems.append(
            (
                f"{ENVELOPE}.capacityAttempts",
                f"must be a whole number from 0 to {attempts_max} (VNB_CAPACITY_MAX_ATTEMPTS)",
            )
        )
    first_seen = deferral.first_seen
    if first_seen.tzinfo is None:
        problems.append((f"{ENVELOPE}.firstSeen", "needs a UTC offset, e.g. 2026-11-29T16:00:00+00:00"))
    else:
        try:
            earliest = (inserted_at or now) - timedelta(seconds=max_wait_seconds) - CLOCK_SKEW
            fits = earliest <= first_seen <= now + CLOCK_SKEW
        except OverflowError:  # year 1 or 9999 with an offset: not a time this app wrote
            fits = False
        if not fits:
            problems.append(
                (
                    f"{ENVELOPE}.firstSeen",
                    f"{first_seen.isoformat()} cannot be when this request was first seen: it must lie between the "
                    f"message's insertion time minus the longest wait ({max_wait_seconds} s: "
                    "VNB_BOOTSTRAP_MAX_WAIT_SECONDS, VNB_CAPACITY_MAX_WAIT_SECONDS; for a capacity give-back "
                    "VNB_LEDGER_RETENTION_SECONDS) and now",
                )
            )
    return problems
