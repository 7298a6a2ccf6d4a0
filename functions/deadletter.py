"""Queue trigger on ``<requests>-poison``: every poisoned message becomes one event."""

from __future__ import annotations

import azure.functions as func

from functions.bindings import CONNECTION, EVENTS_QUEUE, POISON_QUEUE, inbound
from shared.runtime import runtime, utcnow
from shared.services.deadletter import deadletter as deadletter_event

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("deadletter")
@bp.queue_trigger(arg_name="msg", queue_name=POISON_QUEUE, connection=CONNECTION)
@bp.queue_output(arg_name="events", queue_name=EVENTS_QUEUE, connection=CONNECTION)
def deadletter(msg: func.QueueMessage, events: func.Out[str]) -> None:
    rt = runtime()
    events.set(deadletter_event(inbound(msg), settings=rt.settings, now=utcnow(), ledger=rt.ledger))
