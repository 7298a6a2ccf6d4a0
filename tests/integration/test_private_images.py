"""Private images by the app's identity (issue 17), end to end over real sockets: Azurite, the HTTPS
Kubernetes stand-in whose virtual node pulls a private image only with a pull Secret the registry
accepts (azure-aci ``getImagePullSecrets`` + ACI ``InaccessibleImage``), the HTTPS ACR token-exchange
stand-in called by the app's real ``requests`` with a real Entra token from the identity stand-in.

The refresh tokens the registry issued must appear in the pull Secret and nowhere else."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from devtools.azurite import Azurite
from devtools.host import LocalHost
from devtools.standins.acr.server import AcrStandIn
from devtools.standins.arm.standin import CREDENTIAL_ENV_CONFLICTS, ArmStandIn
from devtools.standins.kube.apiserver import KubeStandIn
from shared.secrets import pull
from tests.conftest import job_name_for, wait_for
from tests.integration.conftest import Queues
from tests.integration.test_dispatch import condition

pytestmark = pytest.mark.integration

NS = "vnode-batch"
NEVER = "0 0 0 1 1 *"


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, kube: KubeStandIn) -> Iterator[tuple[ArmStandIn, AcrStandIn]]:
    with ArmStandIn() as arm:
        for name in CREDENTIAL_ENV_CONFLICTS:
            monkeypatch.delenv(name, raising=False)
        with AcrStandIn(validate_token=arm.validate_token, tenant=arm.tenant_id, pullers={arm.app_principal_id}) as acr:
            with kube.cluster.lock:
                kube.aci.registries[acr.server] = acr.check_pull  # ACI pulls from this registry
            yield arm, acr


@pytest.fixture
def runner(make_runner: Callable[..., LocalHost], registry: tuple[ArmStandIn, AcrStandIn]) -> Callable[..., LocalHost]:
    arm, acr = registry

    def build(**overrides: str) -> LocalHost:
        env = {
            "VNB_RECONCILE_SCHEDULE": NEVER,
            "VNB_FOLLOWUP_SECONDS": "0",
            "VNB_KEEP_FINISHED_SECONDS": "0",
            **overrides,
        }
        return make_runner(**arm.credential_env(), VNB_ACR_REGISTRIES=acr.server, **env)

    return build


def _request(acr: AcrStandIn, key: str) -> dict[str, Any]:
    return {"id": key, "image": f"{acr.server}/batch/worker:1", "command": ["sh", "-c", "echo private ok"]}


def _password(secret: dict[str, Any]) -> str:
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    [entry] = config["auths"].values()
    return str(entry["password"])


def _pull_secret(kube: KubeStandIn, acr: AcrStandIn) -> dict[str, Any]:
    return next(s for s in kube.secrets(NS) if s["metadata"]["name"] == pull.secret_name(acr.server))


def test_private_image_runs_with_the_apps_pull_secret_and_the_token_stays_in_it(
    runner: Callable[..., LocalHost],
    queues: Queues,
    kube: KubeStandIn,
    registry: tuple[ArmStandIn, AcrStandIn],
    azurite: Azurite,
    app_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    _, acr = registry
    name = job_name_for("acr-1")
    queues.submit(_request(acr, "acr-1"))
    seen: list[str] = []
    with runner() as host:
        host.run_until_idle()
        job = kube.job(NS, name)
        assert job is not None
        assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": pull.secret_name(acr.server)}]
        secret = _pull_secret(kube, acr)
        assert secret["type"] == "kubernetes.io/dockerconfigjson"
        assert _password(secret) == acr.counters.issued[-1]
        assert wait_for(lambda: condition(kube.job(NS, name) or {}), what="job to finish") == "Complete"
        seen.append(json.dumps([kube.jobs(NS), kube.pods(NS)]))
        assert host.fire_timer("reconcile") == "succeeded"
    assert acr.counters.exchanges == 1
    assert acr.counters.pulls >= 1
    assert acr.counters.pulls_refused == 0
    events = queues.drain_events()
    assert [e["type"] for e in events] == ["io.vnodebatch.job.succeeded"]
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        app_env["VNB_LEDGER_TABLE"]
    )
    seen.append(json.dumps([dict(e) for e in table.list_entities()], default=str))
    seen.append(json.dumps(events))
    seen.append("\n".join(r.getMessage() for r in caplog.records))
    for token in acr.counters.issued:
        for text in seen:
            assert token not in text
            assert token[-40:] not in text  # not even its signature


def test_a_stale_pull_secret_is_renewed_before_the_job_is_created(
    runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn, registry: tuple[ArmStandIn, AcrStandIn]
) -> None:
    _, acr = registry
    # A pull Secret with 10 minutes left (and a password the registry never issued): stale.
    soon = datetime.now(UTC) + timedelta(minutes=10)
    kube.set_secret(NS, pull.pull_secret(acr.server, "not-a-token-of-this-registry", soon, namespace=NS))
    queues.submit(_request(acr, "acr-2"))
    with runner() as host:
        host.run_until_idle()
    renewed = _pull_secret(kube, acr)
    assert _password(renewed) == acr.counters.issued[-1]
    assert pull.fresh(renewed, datetime.now(UTC))
    assert acr.counters.exchanges == 1
    name = job_name_for("acr-2")
    assert wait_for(lambda: condition(kube.job(NS, name) or {}), what="job to finish") == "Complete"
    assert acr.counters.pulls_refused == 0  # the virtual node never saw the stale password


def test_the_reconcile_timer_renews_pull_secrets_before_they_expire(
    runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn, registry: tuple[ArmStandIn, AcrStandIn]
) -> None:
    _, acr = registry
    acr.lifetime_seconds = 30 * 60  # the registry now issues tokens with less than an hour left
    queues.submit(_request(acr, "acr-3"))
    with runner() as host:
        host.run_until_idle()
        assert acr.counters.exchanges == 1
        first = _password(_pull_secret(kube, acr))
        assert host.fire_timer("reconcile") == "succeeded"
        assert acr.counters.exchanges == 2  # 30 minutes left is less than the hour kept in reserve
        assert _password(_pull_secret(kube, acr)) != first
        acr.lifetime_seconds = 3 * 3600  # ACR's own lifetime
        assert host.fire_timer("reconcile") == "succeeded"
        assert acr.counters.exchanges == 3
        assert host.fire_timer("reconcile") == "succeeded"
        assert acr.counters.exchanges == 3  # 3 hours left: kept
    end = pull.expires_at(_pull_secret(kube, acr))
    assert end is not None
    assert end - datetime.now(UTC) > timedelta(hours=2)


def test_a_refused_exchange_rejects_the_request_naming_acrpull(
    runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn, registry: tuple[ArmStandIn, AcrStandIn]
) -> None:
    _, acr = registry
    acr.pullers.clear()  # the app's identity has no AcrPull on the registry
    queues.submit(_request(acr, "acr-4"))
    with runner() as host:
        host.run_until_idle()
    [event] = queues.drain_events()
    assert event["type"] == "io.vnodebatch.request.rejected"
    assert event["data"]["reason"] == "RegistryAccessDenied"
    [error] = event["data"]["errors"]
    assert error["field"] == "image"
    assert "AcrPull" in error["message"]
    assert acr.server in error["message"]
    assert kube.jobs(NS) == []
    assert kube.secrets(NS) == []
    assert queues.count(queues.poison) == 0
    assert acr.counters.exchanges == 1  # once: no retry loop, no 15-minute PendingTimeout
