"""Secrets from Key Vault as files (issue 17), end to end over real sockets: Azurite, the HTTPS
Kubernetes stand-in (Secrets API, garbage collector, virtual node mounting secret volumes as
azure-aci does), the HTTPS Key Vault stand-in read by the real azure-keyvault-secrets client with
the app's managed identity (the ARM stand-in's token endpoint), and the app in the local host.

A planted value must reach the container as a file and appear nowhere else: not in events, the
ledger, the app's logs, or any Kubernetes object but the per-request Secret."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from devtools.azurite import Azurite
from devtools.host import LocalHost
from devtools.standins.arm.standin import CREDENTIAL_ENV_CONFLICTS, ArmStandIn
from devtools.standins.keyvault.server import KeyVaultStandIn
from devtools.standins.kube.apiserver import KubeStandIn
from tests.conftest import job_name_for, wait_for
from tests.integration.conftest import Queues
from tests.integration.test_dispatch import condition

pytestmark = pytest.mark.integration

NS = "vnode-batch"
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
PLANTED = "pl4nted-" + secrets.token_hex(8)


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ArmStandIn, KeyVaultStandIn]]:
    with ArmStandIn() as arm:
        for name in CREDENTIAL_ENV_CONFLICTS:
            monkeypatch.delenv(name, raising=False)
        with KeyVaultStandIn(validate_token=arm.validate_token, readers={arm.app_principal_id}) as kv:
            kv.set_secret("db-password", PLANTED)
            yield arm, kv


@pytest.fixture
def runner_with_vault(
    make_runner: Callable[..., LocalHost], vault: tuple[ArmStandIn, KeyVaultStandIn]
) -> Callable[..., LocalHost]:
    arm, kv = vault

    def build(**overrides: str) -> LocalHost:
        return make_runner(**arm.credential_env(), VNB_KEY_VAULT_URL=kv.url, **overrides)

    return build


def _request(key: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": key,
        "image": IMAGE,
        "command": ["sh", "-c", "cat /var/run/secrets/vnode-batch/DB_PASSWORD; echo done"],
        "secrets": {"DB_PASSWORD": "db-password"},
        **extra,
    }


def test_secret_file_reaches_the_container_and_nowhere_else(
    runner_with_vault: Callable[..., LocalHost],
    queues: Queues,
    kube: KubeStandIn,
    vault: tuple[ArmStandIn, KeyVaultStandIn],
    azurite: Azurite,
    app_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    name = job_name_for("sf-1")
    queues.submit(_request("sf-1", correlationId="c-sf"))
    seen: list[str] = []
    with runner_with_vault(VNB_RECONCILE_SCHEDULE="0 0 0 1 1 *", VNB_KEEP_FINISHED_SECONDS="0") as runner:
        runner.run_until_idle()
        job = kube.job(NS, name)
        assert job is not None
        [secret] = kube.secrets(NS)
        assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
        assert base64.b64decode(secret["data"]["DB_PASSWORD"]).decode() == PLANTED
        pod_spec = job["spec"]["template"]["spec"]
        assert pod_spec["volumes"][0]["secret"] == {"secretName": secret["metadata"]["name"], "optional": False}
        assert wait_for(lambda: condition(kube.job(NS, name) or {}), what="job to finish") == "Complete"
        # Every Kubernetes object but the Secret itself, while they all still exist.
        seen.append(json.dumps([kube.jobs(NS), kube.pods(NS)]))
        assert runner.fire_timer("reconcile") == "succeeded"
        wait_for(lambda: kube.job(NS, name) is None, what="the reported Job to be deleted")
        assert kube.secrets(NS) == []  # the garbage collector took the Secret with its Job
    events = queues.drain_events()
    assert [e["type"] for e in events] == ["io.vnodebatch.job.succeeded"]
    tail = events[0]["data"]["logTail"][0]["text"]
    assert "***" in tail
    assert "done" in tail
    assert vault[1].counters.reads == 1
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        app_env["VNB_LEDGER_TABLE"]
    )
    seen.append(json.dumps([dict(e) for e in table.list_entities()], default=str))
    seen.append(json.dumps(events))
    seen.append("\n".join(r.getMessage() for r in caplog.records))
    for text in seen:
        assert PLANTED not in text


def test_missing_secret_is_a_field_error_not_a_retry(
    runner_with_vault: Callable[..., LocalHost],
    queues: Queues,
    kube: KubeStandIn,
    vault: tuple[ArmStandIn, KeyVaultStandIn],
) -> None:
    queues.submit(_request("sf-2", secrets={"API_KEY": "no-such-secret"}))
    with runner_with_vault() as runner:
        runner.run_until_idle()
    [event] = queues.drain_events()
    assert event["type"] == "io.vnodebatch.request.rejected"
    assert event["data"]["reason"] == "SecretUnavailable"
    assert [e["field"] for e in event["data"]["errors"]] == ["secrets.API_KEY"]
    assert "not found" in event["data"]["errors"][0]["message"]
    assert kube.jobs(NS) == []
    assert kube.secrets(NS) == []
    assert queues.count(queues.poison) == 0
    assert vault[1].counters.reads == 1  # read once: no retry loop


def test_env_values_stay_out_of_echoes_and_annotations(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    # env is for configuration, but a pasted token must not spread: names only in the copies.
    queues.submit({"id": "env-1", "image": IMAGE, "env": {"TOKEN": PLANTED}, "bogus": 1})
    queues.submit({"id": "env-2", "image": IMAGE, "command": ["sh", "-c", "echo hi"], "env": {"TOKEN": PLANTED}})
    with make_runner(VNB_RECONCILE_SCHEDULE="0 0 0 1 1 *") as runner:
        runner.run_until_idle()
        job = kube.job(NS, job_name_for("env-2"))
        assert job is not None
    [rejected] = queues.drain_events()
    assert rejected["type"] == "io.vnodebatch.request.rejected"
    assert json.loads(rejected["data"]["body"])["env"] == {"TOKEN": "***"}
    assert PLANTED not in json.dumps(rejected)
    assert PLANTED not in json.dumps(job["metadata"])
    # ...while the container still gets it (the pod template is where it has to be).
    assert {"name": "TOKEN", "value": PLANTED} in job["spec"]["template"]["spec"]["containers"][0]["env"]
