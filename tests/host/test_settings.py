"""Settings resolution and storage connections as the host reads them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from devtools.azurite import Azurite
from devtools.host import HostError, LocalHost
from devtools.host.settings import resolve_connection
from tests.host.conftest import APP_DIR, probe

IDENTITY = "0b9f8c1e-0000-4000-8000-000000000001"


def test_identity_based_connection_settings_are_accepted(
        make_host: Callable[..., LocalHost], azurite: Azurite, names: dict[str, str], probe_file: Path) -> None:
    # No connection string anywhere: the __queueServiceUri/__credential/__clientId section, as
    # infra sets it for the managed identity. On loopback it is Azurite's account.
    storage = {"TestStorage__queueServiceUri": f"http://127.0.0.1:{azurite.port}/devstoreaccount1",
               "TestStorage__credential": "managedidentity", "TestStorage__clientId": IDENTITY}
    with make_host(storage=storage) as host:
        QueueClient.from_connection_string(azurite.connection_string, names["WORK_QUEUE"]).send_message(
            json.dumps({"id": "mi"}))
        host.run_until_idle(timeout=20)
    assert [c["id"] for c in probe(probe_file, "work")] == ["mi"]
    conn = resolve_connection("TestStorage", storage, "work")
    assert (conn.credential, conn.client_id) == ("managedidentity", IDENTITY)
    assert "AccountKey" not in conn.description


def test_a_missing_connection_names_the_setting(make_host: Callable[..., LocalHost]) -> None:
    with pytest.raises(HostError, match="'TestStorage' does not exist"):
        make_host(storage={})


def test_an_unresolved_setting_token_names_the_setting(azurite: Azurite, names: dict[str, str],
                                                      probe_file: Path) -> None:
    settings = {"PYTHON_SCRIPT_FILE_NAME": "sample_app.py", "PROBE_FILE": str(probe_file),
                "TestStorage": azurite.connection_string, **names}
    del settings["RETURN_QUEUE"]
    with pytest.raises(HostError, match="'%RETURN_QUEUE%' does not resolve to a value"):
        LocalHost(APP_DIR, settings=settings, host_json={"version": "2.0"})


def test_a_placeholder_worker_is_specialised_by_an_environment_reload(
        azurite: Azurite, names: dict[str, str], tmp_path: Path) -> None:
    import os

    from devtools.host.bindings import queue_trigger_data
    from devtools.host.client import WorkerClient
    from devtools.host.protos import InvocationRequest

    placeholder = tmp_path / "placeholder"
    placeholder.mkdir()
    worker = WorkerClient(placeholder, dict(os.environ)).start()  # no function_app.py: nothing indexed
    try:
        assert worker.functions == {}
        worker.specialize(APP_DIR, {**os.environ, "PYTHON_SCRIPT_FILE_NAME": "sample_app.py",
                                    "TestStorage": azurite.connection_string, **names,
                                    "PROBE_FILE": str(tmp_path / "probe.jsonl")})
        data, metadata = queue_trigger_data("msg", json.dumps({"id": "r"}), message_id="m1", dequeue_count=1,
                                            inserted_on=None, expires_on=None, next_visible_on=None, pop_receipt="p")
        metadata = {k: v for k, v in metadata.items() if k not in ("InsertionTime", "ExpirationTime", "NextVisibleTime")}
        response = worker.invoke(InvocationRequest(invocation_id="i1", function_id=worker.functions["work"].function_id,
                                                   input_data=data, trigger_metadata=metadata), timeout=30)
        assert response.result.status == 1, response.result.exception
    finally:
        worker.stop()
    # The settings of the reload reached the app: it wrote where the new PROBE_FILE says.
    assert [c["id"] for c in probe(tmp_path / "probe.jsonl", "work")] == ["r"]
