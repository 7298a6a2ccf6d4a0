"""Queue trigger on the requests queue: one message → one Job (or one event)."""

from __future__ import annotations

import azure.functions as func

from functions.bindings import CONNECTION, EVENTS_QUEUE, REQUESTS_QUEUE, inbound
from shared.runtime import runtime, utcnow
from shared.services.dispatch import dispatch as dispatch_request

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("dispatch")
@bp.queue_trigger(arg_name="msg", queue_name=REQUESTS_QUEUE, connection=CONNECTION)
@bp.queue_output(arg_name="events", queue_name=EVENTS_QUEUE, connection=CONNECTION)
def dispatch(msg: func.QueueMessage, events: func.Out[list[str]]) -> None:
    """Events go through the output binding: the host writes them only if the function
    succeeds, so a retried invocation never leaves a stray event behind."""
    rt = runtime()
    result = dispatch_request(
        inbound(msg), settings=rt.settings, gate=rt.gate, requeue=rt.requeue, now=utcnow, ledger=rt.ledger
    )
    if result.events:
        events.set(result.events)
