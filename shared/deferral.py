"""The envelope of a request that waits for the cluster (pure).

A deferred request is re-enqueued as a new message, so it gets a new message id. The
envelope carries what must survive that hop: the idempotency key (a request without ``id``
is keyed by its *first* message id, so a retry still finds the same Job), the original
message id and first-seen time (how long it has waited), and how often it was deferred.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ENVELOPE = "vnodeBatchDeferred"


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


def wrap(
    request: dict[str, Any],
    *,
    key: str,
    message_id: str,
    first_seen: datetime,
    count: int,
    reason: str,
    capacity_attempts: int = 0,
) -> str:
    meta: dict[str, Any] = {
        "key": key,
        "messageId": message_id,
        "firstSeen": first_seen.isoformat(),
        "count": count,
        "reason": reason[:500],
    }
    if capacity_attempts:
        meta["capacityAttempts"] = capacity_attempts
    return json.dumps({ENVELOPE: meta, "request": request}, separators=(",", ":"), ensure_ascii=False)


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
        )
    except (KeyError, TypeError, ValueError):
        return data, None  # not ours after all: schema validation will say what is wrong
    return request, deferral
