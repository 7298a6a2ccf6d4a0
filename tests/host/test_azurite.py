"""The Azurite launcher: a real emulator process, started and stopped by pid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from devtools.azurite import Azurite, AzuriteError
from devtools.host import LocalHost
from tests.host.conftest import APP_DIR, probe


def test_missing_install_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(AzuriteError, match=r"Azurite is not installed: run `npm ci` in"):
        Azurite(tmp_path).start()


def test_restart_with_persist_dir_keeps_messages_and_the_host_recovers(tmp_path: Path) -> None:
    azurite = Azurite(persist_dir=tmp_path / "azurite")
    with azurite:
        port = azurite.port
        assert f"127.0.0.1:{port}/devstoreaccount1" in azurite.connection_string
        sender = QueueClient.from_connection_string(azurite.connection_string, "kept")
        sender.create_queue()
        sender.send_message(json.dumps({"id": "before-restart"}))

        azurite.restart()
        assert azurite.port == port  # clients built before the restart keep working
        assert azurite.queue_service().get_queue_client("kept").get_queue_properties() \
            .approximate_message_count == 1

        probe_file = tmp_path / "probe.jsonl"
        settings = {"PYTHON_SCRIPT_FILE_NAME": "sample_app.py", "PROBE_FILE": str(probe_file),
                    "TestStorage": azurite.connection_string, "WORK_QUEUE": "kept", "ECHO_QUEUE": "kept-echo",
                    "RETURN_QUEUE": "kept-ret", "TICK_SCHEDULE": "0 0 0 * * *", "AzureWebJobs.tick.Disabled": "true"}
        host = {"extensions": {"queues": {"maxPollingInterval": "00:00:00.500", "messageEncoding": "none"}}}
        with LocalHost(APP_DIR, settings=settings, host_json=host, http_port=0) as runner:
            runner.run_until_idle(timeout=20)
            assert [c["id"] for c in probe(probe_file, "work")] == ["before-restart"]
            # An emulator outage while the runner polls: it logs, backs off and carries on.
            azurite.restart(downtime_seconds=0.5)
            sender.send_message(json.dumps({"id": "after-restart"}))
            runner.run_until_idle(timeout=40)
        assert [(c["id"], c["dequeue_count"]) for c in probe(probe_file, "work")] == [
            ("before-restart", 1), ("after-restart", 1)]
    assert not azurite.running
