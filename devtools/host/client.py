"""The host's worker channel: start the worker process, index, load and invoke through it.

The Functions host talks to the language worker over a gRPC stream and, when an invocation
exceeds ``functionTimeout``, restarts the worker *process* that runs it (azure-functions-host
``src/WebJobs.Script.WebHost/WebScriptHostExceptionHandler.cs`` ``OnTimeoutExceptionAsync``:
"A function timeout has occurred. Restarting worker process executing invocationId …" then
``RestartWorkerWithInvocationIdAsync``), so every invocation running in that worker fails. A Python thread cannot be stopped, so the
only faithful way to do this locally is to run the worker runtime in a child process we can
kill: that is :class:`WorkerClient`. Requests are the runtime's ``handle_event`` contract
(see :mod:`devtools.host.worker`), with messages from :mod:`devtools.host.protos`.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from devtools.host import protos
from devtools.host.settings import HostError

log = logging.getLogger("devtools.host")

_DEVTOOLS_ROOT = str(Path(__file__).resolve().parents[2])


class WorkerRestarted(HostError):
    """The worker process was restarted (a sibling timed out, or it crashed) mid-invocation."""


class FunctionTimeout(HostError):
    """The invocation ran past host.json ``functionTimeout``; the worker was restarted."""


def status_error(result: Any) -> str | None:
    """The failure message of a StatusResult, or None when it succeeded."""
    if result is None or result.status == protos.StatusResult.Success:
        return None
    exc = result.exception
    return (exc.message if exc is not None else "") or "the worker reported a failure"


class WorkerClient:
    """One worker process at a time, restarted on ``functionTimeout`` or a crash.

    ``env`` is the worker's whole environment (app settings exported, as Core Tools does).
    :attr:`functions` maps function name to its ``RpcFunctionMetadata`` after :meth:`start`.
    Thread-safe: many host threads invoke at once, as many invocations run in one worker.
    """

    def __init__(self, app_dir: Path, env: dict[str, str]) -> None:
        self.app_dir = str(Path(app_dir).resolve())
        self.env = dict(env)
        self.env["PYTHONPATH"] = os.pathsep.join([self.app_dir, _DEVTOOLS_ROOT, env.get("PYTHONPATH", "")])
        self.functions: dict[str, Any] = {}
        self.restarts = 0
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._restart_lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: dict[str, Future[Any]] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> WorkerClient:
        """Start the worker, then init (which indexes), metadata and load, as the host does.

        Raises :class:`HostError` with the runtime's message when indexing fails: one refused
        function fails the whole metadata response, and the host loads no function.
        """
        with self._lock:
            host_end, worker_end = socket.socketpair()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "devtools.host.worker", str(worker_end.fileno()), self.app_dir],
                env=self.env, pass_fds=[worker_end.fileno()], cwd=self.app_dir, start_new_session=True)
            worker_end.close()
            conn = Connection(host_end.detach())
            self._conn = conn
            threading.Thread(target=self._read, args=(conn,), name="worker-pipe", daemon=True).start()
        init = self.request("worker_init_request", protos.WorkerInitRequest(
            function_app_directory=self.app_dir, host_version="4", capabilities={}), timeout=120)
        error = status_error(init.result)
        if error:
            self.stop()
            raise HostError(f"the worker could not index the app: {error}")
        metadata = self.request("functions_metadata_request", protos.FunctionsMetadataRequest(
            function_app_directory=self.app_dir), timeout=60)
        self.functions = {m.name: m for m in metadata.function_metadata_results or []}
        for meta in self.functions.values():
            loaded = self.request("function_load_request", protos.FunctionLoadRequest(
                function_id=meta.function_id, metadata=meta), timeout=60)
            error = status_error(loaded.result)
            if error:
                self.stop()
                raise HostError(f"the worker could not load {meta.name}: {error}")
        return self

    def stop(self) -> None:
        """Kill the worker process (and anything it started) and fail what is in flight."""
        with self._lock:
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
            pending, self._pending = self._pending, {}
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        if conn is not None:
            conn.close()
        for future in pending.values():
            if not future.done():
                future.set_exception(WorkerRestarted("the worker process was restarted"))

    def restart(self, reason: str, *, generation: int | None = None) -> None:
        """Kill and start again (re-indexing), like the host after a function timeout.

        With ``generation``, only if no restart happened since (two timeouts in one worker
        restart it once, as the host restarts the worker holding the invocation id).
        """
        with self._restart_lock:  # not self._lock: the pipe reader needs it while start() waits
            if generation is not None and generation != self.restarts:
                return
            log.warning("Restarting the worker process: %s", reason)
            self.stop()
            self.restarts += 1
            self.start()

    def specialize(self, app_dir: Path, env: dict[str, str]) -> None:
        """``function_environment_reload_request``: turn a placeholder worker into the app's.

        What the host sends when a pre-started placeholder worker (started on an app directory
        without ``function_app.py``, so init indexed nothing) is assigned to an app (Linux
        Consumption / Flex placeholder mode, azure_functions_runtime ``handle_event.
        function_environment_reload_request``): the runtime replaces ``os.environ``, adds the
        directory to ``sys.path``, indexes the app and changes directory; the host then asks for
        metadata and loads. Raises :class:`HostError` on failure (e.g. a refused function).
        """
        self.app_dir = str(Path(app_dir).resolve())
        response = self.request("function_environment_reload_request", protos.FunctionEnvironmentReloadRequest(
            environment_variables=dict(env), function_app_directory=self.app_dir), timeout=120)
        error = status_error(response.result)
        if error:
            raise HostError(f"the worker could not reload its environment: {error}")
        self.env = {**env, "PYTHONPATH": self.env.get("PYTHONPATH", "")}
        metadata = self.request("functions_metadata_request", protos.FunctionsMetadataRequest(
            function_app_directory=self.app_dir), timeout=60)
        self.functions = {m.name: m for m in metadata.function_metadata_results or []}
        for meta in self.functions.values():
            self.request("function_load_request", protos.FunctionLoadRequest(
                function_id=meta.function_id, metadata=meta), timeout=60)

    @property
    def pid(self) -> int | None:
        """The worker process id (None when not running)."""
        return self._proc.pid if self._proc is not None else None

    # -- requests -------------------------------------------------------------------------------

    def request(self, name: str, message: Any, *, timeout: float | None) -> Any:
        """Send one request and wait for its response (``TimeoutError`` after ``timeout``)."""
        future = self.send(name, message)
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise TimeoutError(f"{name}: no answer from the worker within {timeout:g}s") from None

    def send(self, name: str, message: Any) -> Future[Any]:
        future: Future[Any] = Future()
        request_id = str(next(self._ids))
        with self._lock:
            conn = self._conn
            if conn is None:
                future.set_exception(WorkerRestarted("the worker process is not running"))
                return future
            self._pending[request_id] = future
        with self._send_lock:
            conn.send((request_id, name, protos.StreamingMessage(request_id=request_id, **{name: message})))
        return future

    def invoke(self, request: Any, *, timeout: float | None) -> Any:
        """Run one ``InvocationRequest``; the ``InvocationResponse``.

        Past ``timeout`` (host.json ``functionTimeout``) the worker is restarted, which fails
        every other invocation in flight with :class:`WorkerRestarted`, and this one raises
        :class:`FunctionTimeout`.
        """
        generation = self.restarts
        future = self.send("invocation_request", request)
        try:
            return future.result(timeout)
        except FutureTimeout:
            self.restart(f"function timeout ({timeout:g}s) exceeded by invocation {request.invocation_id}",
                         generation=generation)
            raise FunctionTimeout(f"Timeout value of {timeout:g}s was exceeded by function "
                                  f"invocation {request.invocation_id}") from None

    def _read(self, conn: Connection) -> None:
        while True:
            try:
                request_id, response = conn.recv()
            except (EOFError, OSError):
                break
            if request_id is None:  # a log record relayed by the worker
                _, name, level, message = response
                logging.getLogger(name).log(level, "%s", message)
                continue
            with self._lock:
                future = self._pending.pop(request_id, None)
            if future is not None and not future.done():
                future.set_result(response)
        with self._lock:
            if self._conn is not conn:
                return  # replaced by a restart: stop() already failed its futures
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(WorkerRestarted("the worker process exited"))
