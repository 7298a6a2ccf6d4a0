"""Queue trigger ``reconcile_followup``: the next reconcile pass of a follow-up chain (while Jobs run)."""

from __future__ import annotations

import azure.functions as func

from functions.bindings import CONNECTION, FOLLOWUP_QUEUE, traced
from shared.flows.followup import chains_for, follow_up
from shared.flows.runtime import runtime, utcnow

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("reconcile_followup")
@bp.queue_trigger(arg_name="msg", queue_name=FOLLOWUP_QUEUE, connection=CONNECTION)
def reconcile_followup(msg: func.QueueMessage, context: func.Context) -> None:
    """The same pass as the reconcile timer's, without its idle-policy step, then the chain's next
    message or its end (``shared.flows.followup``: one pass at a time). Events go out with the
    queue client, before each Job is marked, as on the timer. A failure frees the lease and
    raises: the host makes the message visible again after host.json's visibilityTimeout and the
    retry passes again; past maxDequeueCount it goes to ``<queue>-poison`` (read by nobody,
    harmless; the host gives the copy the default 7-day TTL) and the timer takes over."""
    from shared.flows.idle import reconcile_pass  # as the timer: the idle gate's types, not on dispatch's path

    rt = runtime()
    with traced(context):
        follow_up(
            msg.get_body().decode("utf-8", "replace"),
            chains=chains_for(rt.settings, rt.queues),
            run_pass=lambda: reconcile_pass(rt, policy=False),
            now=utcnow,
        )
