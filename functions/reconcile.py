"""Timer ``reconcile``: one completion event per finished (or stuck, or lost) Job, then cleanup."""

from __future__ import annotations

import azure.functions as func

from functions.bindings import RECONCILE_SCHEDULE
from shared.runtime import runtime, utcnow
from shared.services.reconcile import run

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("reconcile")
@bp.timer_trigger(arg_name="timer", schedule=RECONCILE_SCHEDULE, run_on_startup=False, use_monitor=True)
def reconcile(timer: func.TimerRequest) -> None:
    """Events are sent with the queue client, not an output binding: each must be out *before*
    its Job is marked reported, inside this invocation. A pass cut short by a transient error
    is logged and resumed by the next timer run (timers are not retried)."""
    rt = runtime()
    run(settings=rt.settings, gate=rt.gate, send_event=rt.queues.send_event, now=utcnow, requeue=rt.requeue)
