"""Blob data in and out (issue 17) over real sockets: Azurite's blob service over HTTPS with
``--oauth basic`` (a real user delegation key for the app's identity, real SAS checks), the identity
stand-in, the Kubernetes stand-in and the app in the local host.

The workload is played by this test with the SAS URLs it finds in the per-request Secret (the files
the container has). The SAS values must appear nowhere but that Secret: not in events, the ledger,
logs, Kubernetes objects, the CLI (``render``, ``status``) or error messages."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from devtools.azurite import Azurite
from devtools.azurite_blob import AzuriteBlob
from devtools.host import LocalHost
from devtools.standins.arm.standin import CREDENTIAL_ENV_CONFLICTS, ArmStandIn
from devtools.standins.kube.apiserver import KubeStandIn
from devtools.tls import shared_ca
from shared.cli import main as cli
from tests.conftest import REPO, job_name_for, wait_for
from tests.integration.conftest import Queues
from tests.integration.test_dispatch import condition

pytestmark = pytest.mark.integration

NS = "vnode-batch"
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
KEY = "test-function-key"


class _Token:
    """The app identity's storage token straight from the identity stand-in (the test's own client)."""

    def __init__(self, arm: ArmStandIn) -> None:
        self.arm = arm

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token = self.arm.issue_token(self.arm.app_principal_id, "https://storage.azure.com")
        return AccessToken(token, int((datetime.now(UTC) + timedelta(hours=1)).timestamp()))


@pytest.fixture
def data(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ArmStandIn, AzuriteBlob]]:
    with ArmStandIn() as arm, AzuriteBlob(REPO) as blob:
        for name in CREDENTIAL_ENV_CONFLICTS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(shared_ca().ca_path))
        service = BlobServiceClient(blob.account_url, credential=_Token(arm))
        service.create_container("inputs").upload_blob("in/a.csv", b"x,y\n1,2\n")
        service.create_container("results")
        yield arm, blob


@pytest.fixture
def runner(make_runner: Callable[..., LocalHost], data: tuple[ArmStandIn, AzuriteBlob]) -> Callable[..., LocalHost]:
    arm, blob = data

    def build(**overrides: str) -> LocalHost:
        env = {
            "VNB_RECONCILE_SCHEDULE": "0 0 0 1 1 *",
            "VNB_FOLLOWUP_SECONDS": "0",
            "VNB_KEEP_FINISHED_SECONDS": "0",
            **overrides,
        }
        host = make_runner(**arm.credential_env(), VNB_DATA_ACCOUNT_URL=blob.account_url, **env)
        host.function_keys = {"default": KEY}
        return host

    return build


def _request(key: str) -> dict[str, Any]:
    return {
        "id": key,
        "image": IMAGE,
        "command": ["sh", "-c", "cat /var/run/secrets/vnode-batch/VNB_OUTPUT_URL; echo done"],
        "timeoutSeconds": 600,
        "input": {"container": "inputs", "prefix": "in/"},
        "output": {"container": "results", "prefix": "out/run-1/"},
    }


def test_outputs_are_listed_in_the_event_and_sas_urls_stay_in_the_secret(
    runner: Callable[..., LocalHost],
    queues: Queues,
    kube: KubeStandIn,
    data: tuple[ArmStandIn, AzuriteBlob],
    azurite: Azurite,
    app_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.INFO)
    name = job_name_for("blob-1")
    queues.submit(_request("blob-1"))
    seen: list[str] = []
    before = datetime.now(UTC)
    with runner() as host:
        host.run_until_idle()
        [secret] = kube.secrets(NS)
        files = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert sorted(files) == ["VNB_INPUT_URL", "VNB_OUTPUT_URL"]
        # The SAS lasts the Job's deadline plus the margin, no more.
        expiry = datetime.fromisoformat(parse_qs(urlsplit(files["VNB_OUTPUT_URL"]).query)["se"][0])
        assert before + timedelta(seconds=600) <= expiry <= datetime.now(UTC) + timedelta(seconds=600 + 1800 + 5)
        # The workload: reads its input, cannot write there; writes its results.
        inputs = ContainerClient.from_container_url(files["VNB_INPUT_URL"])
        assert inputs.download_blob("in/a.csv").readall() == b"x,y\n1,2\n"
        with pytest.raises(HttpResponseError) as denied:
            inputs.upload_blob("in/evil.txt", b"no")
        assert denied.value.status_code == 403
        outputs = ContainerClient.from_container_url(files["VNB_OUTPUT_URL"])
        outputs.upload_blob("out/run-1/part-0.csv", b"a" * 100)
        outputs.upload_blob("out/run-1/part-1.csv", b"b" * 23)
        job = kube.job(NS, name)
        assert job is not None
        assert {"name": "VNB_OUTPUT_PREFIX", "value": "out/run-1/"} in job["spec"]["template"]["spec"]["containers"][0][
            "env"
        ]
        assert wait_for(lambda: condition(kube.job(NS, name) or {}), what="job to finish") == "Complete"
        seen.append(json.dumps([kube.jobs(NS), kube.pods(NS)]))
        assert host.fire_timer("reconcile") == "succeeded"
        request_file = tmp_path / "r.json"
        request_file.write_text(json.dumps(_request("blob-1")))
        settings_file = tmp_path / "local.settings.json"
        values = {**app_env, "VNB_DATA_ACCOUNT_URL": data[1].account_url}
        settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        assert cli.main(["--settings", str(settings_file), "render", str(request_file)]) == 0
        assert cli.main(["status", "--api-url", host.http_url, "--function-key", KEY, "blob-1"]) == 0
        out, err = capsys.readouterr()
        seen += [out, err]
    [event] = queues.drain_events()
    assert event["type"] == "io.vnodebatch.job.succeeded"
    assert event["data"]["outputs"] == {
        "container": "results",
        "prefix": "out/run-1/",
        "count": 2,
        "bytes": 123,
        "names": ["out/run-1/part-0.csv", "out/run-1/part-1.csv"],
    }
    tail = event["data"]["logTail"][0]["text"]
    assert "***" in tail
    assert "done" in tail
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        app_env["VNB_LEDGER_TABLE"]
    )
    entities = [dict(e) for e in table.list_entities()]
    ledger = json.dumps(entities, default=str)
    kept = [json.loads(v) for e in entities for v in e.values() if isinstance(v, str) and '"outputs"' in v]
    assert kept, ledger
    assert kept[0]["outputs"] == event["data"]["outputs"]  # the ledger keeps the outputs
    seen += [ledger, json.dumps(event), "\n".join(r.getMessage() for r in caplog.records)]
    for url in files.values():
        sig = parse_qs(urlsplit(url).query)["sig"][0]
        for text in seen:
            assert url not in text
            assert sig not in text


def test_data_without_a_data_account_is_refused(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    queues.submit(_request("blob-2"))
    with make_runner() as host:
        host.run_until_idle()
    [event] = queues.drain_events()
    assert event["type"] == "io.vnodebatch.request.rejected"
    assert "VNB_DATA_ACCOUNT_URL" in json.dumps(event["data"]["errors"])
    assert kube.jobs(NS) == []
