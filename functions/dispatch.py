"""Queue trigger on the requests queue: one message → one Job (or one event)."""

from __future__ import annotations

import typing

import azure.functions as func

from functions.bindings import CONNECTION, EVENTS_QUEUE, REQUESTS_QUEUE, inbound, traced
from shared.flows.dispatch import dispatch as dispatch_request
from shared.flows.followup import after_job_created, chains_for
from shared.flows.inbound import Outcome
from shared.flows.runtime import runtime, utcnow

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("dispatch")
@bp.queue_trigger(arg_name="msg", queue_name=REQUESTS_QUEUE, connection=CONNECTION)
@bp.queue_output(arg_name="events", queue_name=EVENTS_QUEUE, connection=CONNECTION)
# typing.List, not list: the worker runtime refuses a built-in generic inside func.Out
# ("binding events has invalid non-type annotation ...Out[list[str]]"; azure-functions-runtime
# 1.3.0 functions.py Registry.add_func_to_registry_and_return_funcinfo -> validate_function_params,
# whose is_generic_type only knows typing._GenericAlias), and one refused function fails the
# whole metadata response. tests/functions/test_runtime_indexing.py guards this.
def dispatch(
    msg: func.QueueMessage,
    events: func.Out[typing.List[str]],  # noqa: UP006
    context: func.Context,
) -> None:
    """Events go through the output binding: the host writes them only if the function
    succeeds, so a retried invocation never leaves a stray event behind. ``context``: the
    host's trace context of this invocation (``shared.telemetry.signals.invocation``)."""
    rt = runtime()
    with traced(context):
        result = dispatch_request(
            inbound(msg), settings=rt.settings, gate=rt.gate, requeue=rt.requeue, now=utcnow, ledger=rt.ledger
        )
    if result.outcome is Outcome.CREATED:  # reported within seconds of finishing (follow-up passes)
        after_job_created(chains_for(rt.settings, rt.queues), utcnow)
    if result.events:
        events.set(result.events)
