"""An app the worker runtime refuses: ``func.Out[list[str]]`` (a built-in generic in Out)."""

from __future__ import annotations

import azure.functions as func

app = func.FunctionApp()


@app.queue_trigger(arg_name="msg", queue_name="refused-in", connection="TestStorage")
@app.queue_output(arg_name="out", queue_name="refused-out", connection="TestStorage")
def refused(msg: func.QueueMessage, out: func.Out[list[str]]) -> None:
    out.set([msg.get_body().decode("utf-8")])


@app.queue_trigger(arg_name="msg", queue_name="fine-in", connection="TestStorage")
def fine(msg: func.QueueMessage) -> None:
    pass
