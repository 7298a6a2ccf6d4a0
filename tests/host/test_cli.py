"""``python -m devtools.host`` (and its old name ``devtools.runner``), like ``func start``."""

from __future__ import annotations

import ctypes
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from azure.storage.queue import QueueClient

from devtools.azurite import DEV_ACCOUNT_KEY, Azurite
from tests.conftest import REPO
from tests.host.conftest import APP_DIR


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def interrupt(proc: subprocess.Popen[str], *, thread: bool) -> None:
    """SIGINT to the process, or to one of its threads other than the main one.

    A process-directed signal (kill, or Ctrl-C, which the terminal sends to the foreground process
    group) "may be delivered to any one of the threads that does not currently have the signal
    blocked" (signal(7)); CPython then runs the Python handler only once the *main* thread runs
    bytecode again (docs.python.org/3/library/signal.html, "Signals and threads"). ``thread=True``
    makes that choice on purpose, with tgkill(2), for the oldest other thread (the worker-pipe
    reader, alive until the stop; a younger one, e.g. an HTTP handler, may be exiting).
    """
    if not thread:
        proc.send_signal(signal.SIGINT)
        return
    others = sorted(int(tid) for tid in os.listdir(f"/proc/{proc.pid}/task") if int(tid) != proc.pid)
    assert others, "the local host runs its listeners and readers on threads"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(proc.pid, others[0], signal.SIGINT) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


@pytest.mark.parametrize("to_thread", [False, True], ids=["to-process", "to-another-thread"])
def test_cli_lists_functions_runs_them_serves_http_and_stops_on_ctrl_c(
    azurite: Azurite, tmp_path: Path, to_thread: bool
) -> None:
    settings = {"FUNCTIONS_WORKER_RUNTIME": "python", "PYTHON_SCRIPT_FILE_NAME": "sample_app.py",
                "TestStorage": azurite.connection_string, "WORK_QUEUE": "cli-work", "ECHO_QUEUE": "cli-echo",
                "RETURN_QUEUE": "cli-ret", "TICK_SCHEDULE": "0 0 0 1 1 *", "PROBE_FILE": str(tmp_path / "p")}
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": settings}))
    (tmp_path / "host.json").write_text(json.dumps(
        {"version": "2.0", "extensions": {"queues": {"maxPollingInterval": "00:00:00.500", "messageEncoding": "none"}}}))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.runner", "--app-dir", str(APP_DIR), "--port", str(port),
         "--settings", str(tmp_path / "local.settings.json"), "--host-json", str(tmp_path / "host.json")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()

    def read_until(needle: str, quiet: float = 30) -> str:
        while True:
            try:
                line = lines.get(timeout=quiet)
            except queue.Empty:
                raise AssertionError(f"no {needle!r} in output:\n{''.join(seen)}") from None
            seen.append(line)
            if needle in line:
                return line

    try:
        read_until("echo: queueTrigger cli-echo (TestStorage)")
        key_line = read_until("function key")
        key = key_line.rsplit(" ", 1)[1].strip()
        QueueClient.from_connection_string(azurite.connection_string, "cli-echo").send_message("hi")
        read_until("Executed 'Functions.echo' (Succeeded")
        r = requests.get(f"http://127.0.0.1:{port}/api/hello/cli", headers={"x-functions-key": key}, timeout=10)
        assert r.json()["name"] == "cli"
        assert requests.get(f"http://127.0.0.1:{port}/api/hello/cli", timeout=10).status_code == 401
        interrupt(proc, thread=to_thread)
        # A generous wait for a stop that takes about a second (a loaded 2-core CI machine is slow);
        # a Ctrl-C the main thread never sees would wait for ever.
        read_until("Local host stopped", quiet=30)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(seen)
    assert "work: queueTrigger cli-work (TestStorage)" in output
    assert "hello: [GET,POST] /api/hello/{name} (authLevel function)" in output
    assert DEV_ACCOUNT_KEY not in output  # never print storage keys
