"""Binding names shared by the blueprints (the host resolves ``%Setting%`` from app settings)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime

import azure.functions as func

from shared.config.settings import STORAGE_CONNECTION
from shared.flows.inbound import Inbound
from shared.telemetry import signals

CONNECTION = STORAGE_CONNECTION
REQUESTS_QUEUE = "%VNB_REQUESTS_QUEUE%"
POISON_QUEUE = "%VNB_REQUESTS_QUEUE%-poison"
EVENTS_QUEUE = "%VNB_EVENTS_QUEUE%"
FOLLOWUP_QUEUE = "%VNB_FOLLOWUP_QUEUE%"
RECONCILE_SCHEDULE = "%VNB_RECONCILE_SCHEDULE%"
SCHEDULES_TIMER = "%VNB_SCHEDULES_TIMER%"


def inbound(msg: func.QueueMessage) -> Inbound:
    """The trigger's message as the services see it (no azure.functions types past here)."""
    inserted: datetime | None = msg.insertion_time
    return Inbound(
        message_id=msg.id or "",
        body=msg.get_body(),
        dequeue_count=msg.dequeue_count or 1,
        inserted_at=inserted,
    )


def traced(context: func.Context) -> AbstractContextManager[None]:
    """The host's trace context of this invocation, current while the function runs (no-op with
    VNB_TELEMETRY off): ``shared.telemetry.signals.invocation`` says why the app attaches it."""
    trace = context.trace_context
    return signals.invocation(trace.trace_parent, trace.trace_state)
