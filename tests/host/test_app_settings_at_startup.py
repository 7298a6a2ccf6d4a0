"""A bad app setting stops the app at indexing, through the real worker runtime and the local host.

The app validates its settings when the worker imports function_app.py (shared.flows.runtime.check_settings);
azure_functions_runtime handle_event.worker_init_request turns the exception into a failed init, so
no function loads and no queued request is touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from devtools.azurite import Azurite
from devtools.host import HostError
from devtools.host.client import WorkerClient
from tests.conftest import REPO, sample_settings

BAD = {"VNB_MAX_CPU": "abc", "VNB_LOG_TAIL_LINES": "-3", "VNB_MAX_COMPLETIONS": "lots"}


def test_the_worker_refuses_to_index_the_app_naming_every_bad_setting() -> None:
    worker = WorkerClient(REPO, {**os.environ, **sample_settings(), **BAD})
    with pytest.raises(HostError, match="SettingsError: vnode-batch cannot start") as caught:
        worker.start()
    for name in BAD:
        assert name in str(caught.value)
    assert worker.functions == {}  # no function loads, so no trigger listens


def test_the_local_host_stops_startup_and_leaves_queued_requests_untouched(azurite: Azurite, tmp_path: Path) -> None:
    settings = {**sample_settings(), "AzureWebJobsStorage": azurite.connection_string,
                "VNB_REQUESTS_QUEUE": "startup-requests", "VNB_EVENTS_QUEUE": "startup-events", **BAD}
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": settings}))
    requests = QueueClient.from_connection_string(azurite.connection_string, "startup-requests")
    requests.create_queue()
    requests.send_message(json.dumps({"id": "waits", "image": "mcr.microsoft.com/busybox"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VNB_")}
    out = subprocess.run(
        [sys.executable, "-m", "devtools.host", "--app-dir", str(REPO), "--port", "0",
         "--settings", str(tmp_path / "local.settings.json")],
        check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    output = out.stdout + out.stderr
    assert "the worker could not index the app: SettingsError: vnode-batch cannot start" in output
    for name in BAD:
        assert f"- {name}:" in output
    assert "function(s)" not in output  # never reported as started
    [message] = requests.peek_messages(max_messages=32)
    assert message.dequeue_count == 0
    assert json.loads(message.content)["id"] == "waits"


def test_importing_the_app_outside_a_functions_host_does_not_validate_settings() -> None:
    # No AzureWebJobsStorage* at all: a tool importing the module (linter, import probe), not the
    # host, which cannot start without its storage connection. It must import, and stay lean.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VNB_", "AzureWebJobs"))}
    probe = "import sys, function_app; print(sorted(m for m in sys.modules if m.startswith('azure.mgmt')))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    # ...whereas the same import with the host's storage setting and a bad setting fails, naming it.
    bad = subprocess.run([sys.executable, "-c", "import function_app"], cwd=REPO, capture_output=True, text=True,
                         env={**env, "AzureWebJobsStorage": "UseDevelopmentStorage=true", "VNB_MAX_CPU": "abc"},
                         check=False)
    assert bad.returncode != 0
    assert "VNB_MAX_CPU" in bad.stderr
