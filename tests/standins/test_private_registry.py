"""The virtual node pulling from a private registry (azure-aci ``getImagePullSecrets`` + ACI's
``InaccessibleImage``) and the ACR token-exchange stand-in, over real HTTPS."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from devtools.standins.acr.server import NULL_GUID, AcrStandIn
from devtools.standins.arm.standin import ArmStandIn
from devtools.standins.kube.apiserver import KubeStandIn
from devtools.tls import shared_ca
from shared.secrets import pull
from tests.standins.test_kube_standin import NS, Clients
from tests.standins.test_virtual_node import arm_error, job_manifest, provider_failed, run, start


@pytest.fixture
def kube() -> Iterator[KubeStandIn]:
    server = start()
    yield server
    server.stop()


@pytest.fixture
def k8s(kube: KubeStandIn) -> Clients:
    return Clients(kube)


@pytest.fixture
def acr(kube: KubeStandIn) -> Iterator[tuple[ArmStandIn, AcrStandIn]]:
    with (
        ArmStandIn() as arm,
        AcrStandIn(validate_token=arm.validate_token, tenant=arm.tenant_id, pullers={arm.app_principal_id}) as registry,
    ):
        with kube.cluster.lock:
            kube.aci.registries[registry.server] = registry.check_pull
        yield arm, registry


def _exchange(arm: ArmStandIn, acr: AcrStandIn, **form: str) -> requests.Response:
    token = arm.issue_token(arm.app_principal_id, "https://containerregistry.azure.net")
    body = {"grant_type": "access_token", "service": acr.server, "tenant": arm.tenant_id, "access_token": token, **form}
    return requests.post(f"https://{acr.server}/oauth2/exchange", data=body, timeout=5, verify=str(shared_ca().ca_path))


def _private_job(name: str, acr: AcrStandIn, secret: str | None) -> dict[str, Any]:
    job = job_manifest(name, "echo pulled", image=f"{acr.server}/batch/worker:1")
    if secret is not None:
        job["spec"]["template"]["spec"]["imagePullSecrets"] = [{"name": secret}]
    return job


def test_exchange_issues_a_refresh_token_only_to_an_acrpull_identity_of_its_tenant(
    acr: tuple[ArmStandIn, AcrStandIn],
) -> None:
    arm, registry = acr
    ok = _exchange(arm, registry)
    assert ok.status_code == 200
    token = ok.json()["refresh_token"]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["iss"] == "Azure Container Registry"
    assert claims["aud"] == registry.server
    assert registry.check_pull(NULL_GUID, token)
    assert not registry.check_pull("someone", token)  # the null GUID says "refresh token"
    assert _exchange(arm, registry, tenant="11111111-0000-0000-0000-000000000000").status_code == 401
    registry.pullers.clear()
    refused = _exchange(arm, registry)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert not registry.check_pull(NULL_GUID, token)  # the role is gone: pulls stop too
    challenge = requests.get(f"https://{registry.server}/v2/", timeout=5, verify=str(shared_ca().ca_path))
    assert challenge.status_code == 401
    assert f'realm="https://{registry.server}/oauth2/token"' in challenge.headers["Www-Authenticate"]


def test_private_image_pulls_with_a_valid_pull_secret(
    kube: KubeStandIn, k8s: Clients, acr: tuple[ArmStandIn, AcrStandIn]
) -> None:
    arm, registry = acr
    token = _exchange(arm, registry).json()["refresh_token"]
    kube.set_secret(NS, pull.pull_secret(registry.server, token, datetime.now(UTC) + timedelta(hours=3), namespace=NS))
    pod = run(kube, k8s, _private_job("pulls", registry, pull.secret_name(registry.server)))
    assert pod["status"]["phase"] == "Succeeded"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no-secret-ref", "InaccessibleImage"),
        ("missing", 'secret "vnb-pull-absent" not found'),
        ("wrong-password", "InaccessibleImage"),
        ("opaque", "image pull secret type is not one of kubernetes.io/dockercfg or kubernetes.io/dockerconfigjson"),
        ("no-username", "no username present in auth config for server: "),
    ],
)
def test_private_image_without_a_good_pull_secret_fails_as_aci_does(
    kube: KubeStandIn, k8s: Clients, acr: tuple[ArmStandIn, AcrStandIn], case: str, expected: str
) -> None:
    _, registry = acr
    secret: str | None = "vnb-pull-bad"
    body = pull.pull_secret(registry.server, "never-issued", datetime.now(UTC) + timedelta(hours=3), namespace=NS)
    body["metadata"]["name"] = "vnb-pull-bad"
    if case == "no-secret-ref":
        secret = None
    elif case == "missing":
        secret = "vnb-pull-absent"
    elif case == "opaque":
        body["type"] = "Opaque"
    elif case == "no-username":
        config = {"auths": {registry.server: {"identitytoken": "x"}}}
        body["data"] = {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}
    if case not in ("no-secret-ref", "missing"):
        kube.set_secret(NS, body)
    message = provider_failed(run(kube, k8s, _private_job(f"bad-{case}", registry, secret)))
    if expected == "InaccessibleImage":
        status_line, error = arm_error(message)
        assert "400" in status_line
        assert error["code"] == "InaccessibleImage"
        assert "Please check the image and registry credential." in error["message"]
    else:
        assert message.startswith(expected)
