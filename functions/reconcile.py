"""Timer ``reconcile``: one completion event per finished (or stuck, or lost) Job, then cleanup."""

from __future__ import annotations

import azure.functions as func

from functions.bindings import RECONCILE_SCHEDULE, traced
from shared.flows.followup import chains_for, timer_pass
from shared.flows.runtime import runtime, utcnow

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("reconcile")
@bp.timer_trigger(arg_name="timer", schedule=RECONCILE_SCHEDULE, run_on_startup=False, use_monitor=True)
def reconcile(timer: func.TimerRequest, context: func.Context) -> None:
    """Events are sent with the queue client, not an output binding: each must be out *before*
    its Job is marked reported, inside this invocation. A pass cut short by a transient error
    is logged and resumed by the next timer run (the host does not retry a failed timer run).
    ``use_monitor`` buys nothing here: each run looks at everything unreported, so a missed run
    needs no catch-up; and the host turns it off for the usual sub-minute schedules anyway
    (azure-webjobs-sdk-extensions ``Extensions/Timers/Scheduling/TimerSchedule.cs``). With
    VNB_IDLE_STOP_MINUTES set, the pass is followed by one step of the idle-stop policy. While
    follow-up passes run (Jobs in flight) the timer leaves the reporting to them; a pass that
    leaves Jobs in flight starts them (``shared.flows.followup``: one pass at a time)."""
    from shared.flows.idle import reconcile_pass  # the idle policy (aks mode): not on the queue path

    rt = runtime()
    with traced(context):
        timer_pass(chains_for(rt.settings, rt.queues), lambda: reconcile_pass(rt), utcnow)
