"""The worker process: the proxy's side of the contract, around the real execution runtime.

Run as ``python -m devtools.host.worker FD APP_DIR`` by :class:`devtools.host.client.WorkerClient`
with the app settings as its environment (Core Tools starts the worker with
``local.settings.json`` ``Values`` exported, and so does the host on Azure with app settings).
It does what the Python 3.13 proxy worker does with each host request (Azure/azure-functions-python-worker
``workers/proxy_worker/dispatcher.py``: ``_handle__worker_init_request`` …
``_handle__invocation_request``): wraps it as a ``WorkerRequest`` (``.name``, ``.request``,
``.properties``), injects the protobuf module as ``properties["protos"]`` at init and
environment reload, starts the runtime's thread pool (``start_threadpool_executor``, which
reads ``PYTHON_THREADPOOL_THREAD_COUNT``; unset it is ``ThreadPoolExecutor``'s default,
``min(32, os.cpu_count() + 4)``), and awaits the matching coroutine of
``azure_functions_runtime.handle_event`` on one event loop, so invocations run concurrently
as on Azure. Nothing here looks inside the app: all indexing and invoking is the runtime's.

Wire format: pickled ``(request_id, name, StreamingMessage)`` from the host and
``(request_id, response)`` back, over a socket pair (``multiprocessing.connection``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from devtools.host import protos

# The five request kinds of the runtime's contract; the value is the StreamingMessage field.
HANDLERS = {
    "worker_init_request": "worker_init_request",
    "functions_metadata_request": "functions_metadata_request",
    "function_load_request": "function_load_request",
    "invocation_request": "invocation_request",
    "function_environment_reload_request": "function_environment_reload_request",
}


@dataclass
class WorkerRequest:
    """What the proxy hands the runtime (proxy_worker ``WorkerRequest``)."""

    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


def serve(conn: Connection, app_dir: str) -> None:
    """Answer host requests until the host closes the pipe (or kills this process)."""
    os.chdir(app_dir)
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    from azure_functions_runtime import handle_event, start_threadpool_executor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    send_lock = threading.Lock()

    async def answer(request_id: str, name: str, message: Any) -> None:
        properties: dict[str, Any] = {}
        if name in ("worker_init_request", "function_environment_reload_request"):
            properties = {"protos": protos, "host": "127.0.0.1"}
            start_threadpool_executor()
        handler = getattr(handle_event, name)
        try:
            response = await handler(WorkerRequest(name=name, request=message, properties=properties))
        except Exception as exc:  # the runtime answers failures itself; this is a runtime bug
            response = protos.StatusResult(status=protos.StatusResult.Failure,
                                           exception=protos.RpcException(message=repr(exc)))
        sys.stdout.flush()
        with send_lock:
            conn.send((request_id, response))

    def read() -> None:
        while True:
            try:
                request_id, name, message = conn.recv()
            except (EOFError, OSError):
                loop.call_soon_threadsafe(loop.stop)
                return
            if name not in HANDLERS:
                continue
            asyncio.run_coroutine_threadsafe(answer(request_id, name, message), loop)

    threading.Thread(target=read, name="host-pipe", daemon=True).start()
    _relay_logs(conn, send_lock)
    loop.run_forever()


class _PipeLogHandler(logging.Handler):
    """Sends log records to the host, as the proxy streams ``RpcLog`` messages (proxy_worker
    ``dispatcher.py`` ``AsyncLoggingHandler``/``on_logging``); the host logs them again under
    the same logger name."""

    def __init__(self, conn: Connection, lock: threading.Lock) -> None:
        super().__init__(logging.INFO)
        self.conn, self.send_lock = conn, lock

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("azure.functions", "azure_functions")) and record.levelno < logging.WARNING:
            # The runtime's per-invocation chatter. Not a platform rule: the proxy forwards these
            # too (proxy_worker dispatcher.py ``on_logging``) and the host's ``logging.logLevel``
            # decides; the local host drops them to keep its console readable. The SDK's own
            # records are the app's to level (VNB_AZURE_SDK_LOG_LEVEL, ``check_settings``).
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            with self.send_lock:
                self.conn.send((None, ("log", record.name, record.levelno, message)))
        except Exception:  # the host is gone or the record cannot be formatted
            self.handleError(record)


def _relay_logs(conn: Connection, lock: threading.Lock) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(_PipeLogHandler(conn, lock))


def main() -> None:
    fd, app_dir = int(sys.argv[1]), sys.argv[2]
    serve(Connection(fd), app_dir)
    # Sync invocations may still be running on pool threads: the host is gone, so exit now.
    os._exit(0)


if __name__ == "__main__":
    main()
