"""``python -m devtools.runner`` from the repo root, like ``func start``."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devtools.azurite import DEV_ACCOUNT_KEY, Azurite

REPO = Path(__file__).resolve().parents[2]


def test_cli_lists_functions_runs_them_and_stops_on_ctrl_c(azurite: Azurite, tmp_path: Path) -> None:
    settings = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "TestStorage": azurite.connection_string,
        "WORK_QUEUE": "cli-work",
        "WORK_OUT_QUEUE": "cli-work-out",
        "ECHO_QUEUE": "cli-echo",
        "TICK_SCHEDULE": "0 0 0 * * *",
    }
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": settings}))
    (tmp_path / "host.json").write_text(
        json.dumps({"version": "2.0", "extensions": {"queues": {"maxPollingInterval": "00:00:00.500"}}})
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.runner",
            "--app",
            "tests.runner.sample_app:app",
            "--settings",
            str(tmp_path / "local.settings.json"),
            "--host-json",
            str(tmp_path / "host.json"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        for line in proc.stdout or []:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()

    def read_until(needle: str) -> None:
        while True:
            try:
                line = lines.get(timeout=20)
            except queue.Empty:
                raise AssertionError(f"no {needle!r} in output:\n{''.join(seen)}") from None
            seen.append(line)
            if needle in line:
                return

    try:
        read_until("echo: queueTrigger cli-echo (TestStorage)")
        read_until("Local runner started")
        QueueClient.from_connection_string(
            azurite.connection_string, "cli-echo", message_encode_policy=TextBase64EncodePolicy()
        ).send_message("hi")
        read_until("Executed 'Functions.echo' (Succeeded")
        proc.send_signal(signal.SIGINT)
        read_until("Local runner stopped")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(seen)
    assert "work: queueTrigger cli-work (TestStorage)" in output
    assert DEV_ACCOUNT_KEY not in output  # never print keys
