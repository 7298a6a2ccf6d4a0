"""A small Functions app for the runner's own tests (independent of the real function_app.py).

It is shaped like the real app on purpose: blueprints, ``%Setting%`` queue names, an output
binding, a dead-letter function on ``%X%-poison`` and a timer. What each invocation saw is
recorded in :data:`PROBE` so tests can assert on behaviour a user would notice.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import azure.functions as func


@dataclass
class Probe:
    """What the sample functions observed; reset by the tests' fixture."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    work_calls: list[tuple[str, int]] = field(default_factory=list)  # (message id in body, dequeue count)
    echo_bodies: list[bytes] = field(default_factory=list)
    dead_letters: list[tuple[bytes, int]] = field(default_factory=list)
    timer_calls: list[tuple[bool, str]] = field(default_factory=list)  # (past_due, status "Next")
    timer_gate: threading.Event | None = None  # when set by a test, timer runs wait for it
    barrier: threading.Barrier | None = None
    active: int = 0
    max_active: int = 0
    timer_active: int = 0
    timer_max_active: int = 0

    def reset(self) -> None:
        with self.lock:
            self.work_calls.clear()
            self.echo_bodies.clear()
            self.dead_letters.clear()
            self.timer_calls.clear()
            self.timer_gate = None
            self.barrier = None
            self.active = self.max_active = 0
            self.timer_active = self.timer_max_active = 0


PROBE = Probe()

work_bp = func.Blueprint()  # type: ignore[no-untyped-call]
timer_bp = func.Blueprint()  # type: ignore[no-untyped-call]


@work_bp.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="TestStorage")
@work_bp.queue_output(arg_name="out", queue_name="%WORK_OUT_QUEUE%", connection="TestStorage")
def work(msg: func.QueueMessage, out: func.Out[list[str]]) -> None:
    """Body: {"id": str, "outputs": int, "fail": bool, "barrier": bool, "sleep": seconds}."""
    body = json.loads(msg.get_body())
    with PROBE.lock:
        PROBE.work_calls.append((body["id"], msg.dequeue_count or 0))
        PROBE.active += 1
        PROBE.max_active = max(PROBE.max_active, PROBE.active)
    try:
        out.set([f"{body['id']}:{n}" for n in range(body.get("outputs", 1))])
        if body.get("barrier") and PROBE.barrier is not None:
            PROBE.barrier.wait()  # only passes when enough invocations run at once
        time.sleep(body.get("sleep", 0))
        if body.get("fail"):
            raise RuntimeError(f"failing on purpose: {body['id']}")
    finally:
        with PROBE.lock:
            PROBE.active -= 1


@work_bp.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%-poison", connection="TestStorage")
def deadletter(msg: func.QueueMessage) -> None:
    with PROBE.lock:
        PROBE.dead_letters.append((msg.get_body(), msg.dequeue_count or 0))


@work_bp.queue_trigger(arg_name="msg", queue_name="%ECHO_QUEUE%", connection="TestStorage")
@work_bp.queue_output(arg_name="out", queue_name="%ECHO_QUEUE%-out", connection="TestStorage")
def echo(msg: func.QueueMessage, out: func.Out[str]) -> None:
    with PROBE.lock:
        PROBE.echo_bodies.append(msg.get_body())
    out.set(msg.get_body().decode("utf-8").upper())


@timer_bp.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%", run_on_startup=False, use_monitor=False)
def tick(timer: func.TimerRequest) -> None:
    with PROBE.lock:
        PROBE.timer_active += 1
        PROBE.timer_max_active = max(PROBE.timer_max_active, PROBE.timer_active)
        # schedule_status is on the concrete azure.functions.timer.TimerRequest the host passes.
        status: dict[str, str] = getattr(timer, "schedule_status", {})
        PROBE.timer_calls.append((timer.past_due, status["Next"]))
        gate = PROBE.timer_gate
    try:
        if gate is not None:
            gate.wait(10)
    finally:
        with PROBE.lock:
            PROBE.timer_active -= 1


app = func.FunctionApp()
app.register_functions(work_bp)
app.register_functions(timer_bp)

# The timer blueprint alone: timer tests need no queue service.
timer_app = func.FunctionApp()
timer_app.register_functions(timer_bp)
