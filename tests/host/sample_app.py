"""A small Functions app for the local host's own tests (independent of the real function_app.py).

The host runs it in the worker process on the real runtime (``PYTHON_SCRIPT_FILE_NAME`` =
``sample_app.py``), so what each invocation saw is appended as JSON lines to the file named by
the ``PROBE_FILE`` setting; tests read it with :func:`tests.host.conftest.probe`.
"""

from __future__ import annotations

import json
import os
import threading
import time
import typing

import azure.functions as func

_lock = threading.Lock()
_active = 0


def record(kind: str, **data: typing.Any) -> None:
    line = json.dumps({"kind": kind, "pid": os.getpid(), **data}) + "\n"
    with _lock, open(os.environ["PROBE_FILE"], "a", encoding="utf-8") as f:
        f.write(line)


app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="TestStorage")
@app.queue_output(arg_name="out", queue_name="%WORK_QUEUE%-out", connection="TestStorage")
def work(msg: func.QueueMessage, out: func.Out[typing.List[str]]) -> None:  # noqa: UP006 - the runtime refuses list[str]
    """Body: {"id", "outputs": [str], "fail": bool, "sleep": seconds}."""
    global _active
    body = json.loads(msg.get_body())
    with _lock:
        _active += 1
        active = _active
    record("work", id=body["id"], message_id=msg.id, dequeue_count=msg.dequeue_count, active=active,
           inserted=msg.insertion_time.isoformat() if msg.insertion_time else None, pop_receipt=msg.pop_receipt)
    try:
        out.set(body.get("outputs", []))
        time.sleep(body.get("sleep", 0))
        if body.get("fail"):
            raise RuntimeError(f"failing on purpose: {body['id']}")
        record("work-done", id=body["id"])
    finally:
        with _lock:
            _active -= 1


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%-poison", connection="TestStorage")
def deadletter(msg: func.QueueMessage) -> None:
    body = msg.get_body().decode("utf-8")
    record("deadletter", body=body, message_id=msg.id, dequeue_count=msg.dequeue_count)
    if body.startswith("fail"):
        raise RuntimeError("dead-letter handler failing on purpose")


@app.queue_trigger(arg_name="msg", queue_name="%ECHO_QUEUE%", connection="TestStorage")
@app.queue_output(arg_name="out", queue_name="%ECHO_QUEUE%-out", connection="TestStorage")
def echo(msg: func.QueueMessage, out: func.Out[str]) -> None:
    out.set(msg.get_body().decode("utf-8"))


@app.queue_trigger(arg_name="msg", queue_name="%ECHO_QUEUE%-out", connection="TestStorage")
def sink(msg: func.QueueMessage) -> None:
    record("sink", body=msg.get_body().decode("utf-8"))


@app.queue_trigger(arg_name="msg", queue_name="%RETURN_QUEUE%", connection="TestStorage")
def returns(msg: func.QueueMessage) -> str:
    return "a value, but no $return binding"


@app.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%", use_monitor=True)
def tick(timer: func.TimerRequest) -> None:
    status = getattr(timer, "schedule_status", None)
    record("tick", past_due=timer.past_due, status=status)


@app.route(route="hello/{name}", methods=["GET", "POST"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    if req.params.get("fail"):
        raise RuntimeError("secret detail that must not reach the caller")
    body = {"name": req.route_params.get("name"), "method": req.method, "query": dict(req.params),
            "body": req.get_body().decode("utf-8"), "agent": req.headers.get("user-agent")}
    return func.HttpResponse(json.dumps(body), status_code=201 if req.method == "POST" else 200,
                             mimetype="application/json", headers={"x-sample": "yes"})


@app.route(route="open", auth_level=func.AuthLevel.ANONYMOUS)
def open_door(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("open")


@app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin")


@app.route(route="bytes/{kind}", auth_level=func.AuthLevel.ANONYMOUS)
def raw_bytes(req: func.HttpRequest) -> func.HttpResponse:
    # Not UTF-8, with a NUL: the body must reach the caller byte for byte.
    types = {"png": "image/png", "css": "text/css"}
    return func.HttpResponse(b"\x89PNG\r\n\x1a\n\x00\xff\xfe", mimetype=types[req.route_params["kind"]],
                             headers={"cache-control": "no-cache", "etag": '"v1"'})
