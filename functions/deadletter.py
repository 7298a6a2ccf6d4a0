"""Queue trigger on ``<requests>-poison``: every poisoned message becomes one event."""

from __future__ import annotations

import typing

import azure.functions as func

from functions.bindings import CONNECTION, EVENTS_QUEUE, POISON_QUEUE, inbound
from shared.flows.deadletter import deadletter as deadletter_event
from shared.flows.runtime import runtime, utcnow

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("deadletter")
@bp.queue_trigger(arg_name="msg", queue_name=POISON_QUEUE, connection=CONNECTION)
@bp.queue_output(arg_name="events", queue_name=EVENTS_QUEUE, connection=CONNECTION)
def deadletter(msg: func.QueueMessage, events: func.Out[typing.List[str]]) -> None:  # noqa: UP006
    """One ``request.deadlettered`` event per poison-queue message, written by the host on success
    (none when the ledger says the request already ended otherwise: one outcome per request; none
    yet when the ledger is down: the body is parked in the poison queue and tries again later).

    Why a list of one: the host parses a ``str`` output that looks like JSON and rewrites a JSON
    object with ``JObject.ToString()`` (indented) before queueing it, while each element of a
    string collection is queued as it is (azure-functions-host ``src/WebJobs.Script/Binding/
    FunctionBinding.cs`` ``ReadAsEnumerable``, ``BindAsyncCollectorAsync``). Why ``typing.List``
    and not ``list``: the production worker's ``validate_function_params`` refuses a built-in
    generic inside ``func.Out`` ("invalid non-type annotation"), and one refused function stops
    every function of the app from loading (azure-functions-runtime 1.3.0).
    """
    rt = runtime()
    event = deadletter_event(inbound(msg), settings=rt.settings, now=utcnow(), ledger=rt.ledger, park=rt.park)
    if event is not None:  # None: the request already ended otherwise, or the body was parked
        events.set([event])
