"""Fixtures for the bootstrap tests: the ARM stand-in (with its managed-identity endpoint), a
Kubernetes stand-in that has NO virtual node until the ARM stand-in finishes enabling the
addon and NO app namespace until the ARM stand-in finishes creating the managed namespace,
Azurite, and app settings in aks mode pointing at all three.

The app's real SDK clients and the real DefaultAzureCredential are used: the credential finds
the stand-in's App Service identity endpoint through the environment, exactly as in a
Function App. Import the fixtures into a test module with ``from tests.integration.bootstrap_fixtures import *``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from devtools.azurite import Azurite
from devtools.host import LocalHost
from devtools.standins.arm.standin import CREDENTIAL_ENV_CONFLICTS, ArmStandIn, RecordedRequest
from devtools.standins.kube.apiserver import KubeStandIn
from shared.cluster.bootstrap import AksGate
from shared.cluster.readiness import Readiness
from shared.config.settings import Settings
from tests.conftest import BASE_ENV, REPO
from tests.integration.conftest import FAST_HOST, Queues

__all__ = [
    "NS",
    "RG",
    "AksWorld",
    "aks",
    "aks_queues",
    "aks_runner",
    "drive",
    "make_aks",
    "namespace_creator",
]

RG = "rg-aks"
NS = "vnode-batch"


def namespace_creator(kube: KubeStandIn) -> Callable[[str], None]:
    """What AKS does when a managed namespace is created: the Namespace appears in the cluster
    (or an existing one is adopted, with ``adoptionPolicy: Always``)."""

    def create(name: str) -> None:
        with kube.cluster.lock:
            if name not in kube.cluster.namespaces:
                kube.cluster.create_namespace(
                    {"metadata": {"name": name, "labels": {"kubernetes.azure.com/managedByArm": "true"}}}
                )

    return create


@dataclass
class AksWorld:
    arm: ArmStandIn
    kube: KubeStandIn
    env: dict[str, str]
    gates: list[AksGate] = field(default_factory=list)

    @property
    def cluster_id(self) -> str:
        return (
            f"/subscriptions/{self.arm.subscription_id}/resourceGroups/{RG}"
            f"/providers/Microsoft.ContainerService/managedClusters/vnode-batch-aks"
        )

    def settings(self, **overrides: str) -> Settings:
        return Settings.from_env({**self.env, **overrides})

    def gate(self, **overrides: str) -> AksGate:
        """A fresh gate: what a new process (another instance) would have."""
        gate = AksGate(self.settings(**overrides))
        self.gates.append(gate)
        return gate

    def writes(self) -> list[RecordedRequest]:
        return self.arm.write_requests()

    def puts(self, pattern: str) -> list[RecordedRequest]:
        rx = re.compile(pattern, re.IGNORECASE)
        return [r for r in self.arm.requests if r.method == "PUT" and rx.search(r.path)]


def drive(gate: AksGate, *, timeout: float = 30.0, pause: float = 0.05) -> tuple[Readiness, list[str]]:
    """Ask the gate until it says ready or hopeless (what a stream of messages does); returns the
    last answer and every distinct reason seen on the way."""
    reasons: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        readiness = gate.check()
        if readiness.reason and (not reasons or reasons[-1] != readiness.reason):
            reasons.append(readiness.reason)
        if readiness.cluster is not None or readiness.hopeless:
            return readiness, reasons
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready after {timeout} s; reasons seen: {reasons}")
        time.sleep(pause)


@pytest.fixture
def make_aks(monkeypatch: pytest.MonkeyPatch, azurite: Azurite) -> Iterator[Callable[..., AksWorld]]:
    """Build a world: ``make_aks(register=False)`` leaves the app unable to register the ACI
    provider; other keyword arguments go to the ARM stand-in (LRO durations, token lifetime)."""
    started: list[tuple[ArmStandIn, KubeStandIn]] = []

    # the SDKs' HTTP logging (INFO) would drown the app's own lines in caplog
    monkeypatch.setattr(logging.getLogger("azure"), "level", logging.WARNING)

    def make(*, register: bool = True, **arm_options: Any) -> AksWorld:
        kube = KubeStandIn(virtual_node=False, namespaces=("default",), pod_start_seconds=0.02).start()
        options: dict[str, Any] = {
            "cluster_resource_group": RG,
            "cluster_create_seconds": 0.6,
            "addon_enable_seconds": 0.3,
            "provider_register_seconds": 0.2,
            "network_seconds": 0.05,
        }
        options.update(arm_options)
        arm = ArmStandIn(
            kubeconfig_cluster=(kube.url, kube.ca_pem),
            on_virtual_node_enabled=kube.add_virtual_node,
            on_namespace_created=namespace_creator(kube),
            **options,
        )
        arm.start()
        started.append((arm, kube))
        kube.token_validator = arm.kube_token_validator()  # only AKS Entra tokens open the API
        arm.create_resource_group(RG, "westus")
        if register:
            # Subscription scope: by design the app has nothing there (infra/); an operator
            # would grant this once, or register the provider themselves.
            arm.grant(
                arm.app_principal_id,
                f"/subscriptions/{arm.subscription_id}",
                ["Microsoft.ContainerInstance/register/action"],
            )
        for name in CREDENTIAL_ENV_CONFLICTS:
            monkeypatch.delenv(name, raising=False)
        credential_env = arm.credential_env()
        for name, value in credential_env.items():
            monkeypatch.setenv(name, value)
        prefix = "b" + uuid.uuid4().hex[:8]
        env = dict(BASE_ENV)
        env.pop("VNB_KUBECONFIG", None)
        env.update(credential_env)
        env.update(
            {
                "AzureWebJobsStorage": azurite.connection_string,
                "VNB_REQUESTS_QUEUE": f"{prefix}-requests",
                "VNB_EVENTS_QUEUE": f"{prefix}-events",
                "VNB_CLUSTER_MODE": "aks",
                "VNB_SUBSCRIPTION_ID": arm.subscription_id,
                "VNB_RESOURCE_GROUP": RG,
                "VNB_APP_PRINCIPAL_ID": arm.app_principal_id,
                "VNB_ARM_ENDPOINT": arm.url,
                "VNB_NAMESPACE": NS,
                "VNB_BOOTSTRAP_DEFER_SECONDS": "1",
                "VNB_READY_CACHE_SECONDS": "0.05",
                "VNB_KUBE_TIMEOUT_SECONDS": "5",
                "VNB_RECONCILE_SCHEDULE": "*/1 * * * * *",
                "VNB_LEDGER_TABLE": f"{prefix}ledger",
                # These tests look at the finished Jobs (the app's default deletes them at once).
                "VNB_KEEP_FINISHED_SECONDS": "3600",
            }
        )
        return AksWorld(arm=arm, kube=kube, env=env)

    yield make
    for arm, kube in started:
        arm.stop()
        kube.stop()


@pytest.fixture
def aks(make_aks: Callable[..., AksWorld]) -> AksWorld:
    return make_aks()


@pytest.fixture
def aks_queues(azurite: Azurite, aks: AksWorld) -> Queues:
    return Queues(azurite.queue_service(), aks.env)


@pytest.fixture
def aks_runner(aks: AksWorld) -> Iterator[Callable[..., LocalHost]]:
    runners: list[LocalHost] = []

    def build(**overrides: str) -> LocalHost:
        runner = LocalHost(REPO, settings={**aks.env, **overrides}, host_json=FAST_HOST)
        runners.append(runner)
        return runner

    yield build
    for runner in runners:
        runner.stop()
