"""What dispatch is handed (a queue message as the binding gives it) and what it answers (pure values)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

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
