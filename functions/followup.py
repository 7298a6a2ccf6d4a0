"""Queue trigger ``reconcile_followup``: the next reconcile pass of a follow-up chain (while Jobs run)."""

from __future__ import annotations

import azure.functions as func

from functions.bindings import CONNECTION, FOLLOWUP_QUEUE
from shared.flows.followup import chains_for, follow_up
from shared.flows.runtime import runtime, utcnow

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("reconcile_followup")
@bp.queue_trigger(arg_name="msg", queue_name=FOLLOWUP_QUEUE, connection=CONNECTION)
def reconcile_followup(msg: func.QueueMessage) -> None:
    """The same pass as the reconcile timer's, without its idle-policy step, then the chain's next
    message or its end (``shared.flows.followup``). Events go out with the queue client, before
    each Job is marked, as on the timer. A failure raises: the host makes the message visible
    again after host.json's visibilityTimeout and retries it, still the chain's generation; past
    maxDequeueCount it goes to ``<queue>-poison`` (read by nobody; harmless, it expires) and the
    timer starts a new chain."""
    from shared.flows.idle import reconcile_timer  # as the timer: the idle gate's types, not on dispatch's path

    rt = runtime()
    follow_up(
        msg.get_body().decode("utf-8", "replace"),
        chains=chains_for(rt.settings, rt.queues),
        run_pass=lambda: reconcile_timer(
            settings=rt.settings,
            gate=rt.gate,
            send_event=rt.queues.send_event,
            waiting=lambda: rt.queues.approximate_count(rt.settings.requests_queue),
            now=utcnow,
            ledger=rt.ledger,
            requeue=rt.requeue,
            policy=False,
        ),
        now=utcnow,
    )
