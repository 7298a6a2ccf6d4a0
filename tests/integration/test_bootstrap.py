"""From an empty resource group to Jobs on the virtual node, through the app's own functions.

Real sockets throughout: Azurite for the queues, the ARM stand-in (real management SDKs, real
DefaultAzureCredential via its managed-identity endpoint), the Kubernetes stand-in whose
virtual node appears only once the addon is enabled, and the local runner driving the
indexed functions with the host's queue semantics.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from devtools.host import LocalHost
from shared.base.conventions import NAMESPACE_LABELS
from shared.cluster import roles
from shared.cluster.plan.steps import Step
from tests.conftest import job_name_for, wait_for
from tests.integration.bootstrap_fixtures import *  # noqa: F403
from tests.integration.bootstrap_fixtures import NS, AksWorld
from tests.integration.conftest import Queues

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
STEP_ORDER = [str(s) for s in Step]


def body_of(requests: list[Any], what: str) -> dict[str, Any]:
    assert len(requests) >= 1, what
    body: dict[str, Any] = requests[0].body
    return body


def test_requests_wait_for_the_bootstrap_then_run_on_the_virtual_node(
    aks: AksWorld,
    aks_queues: Queues,
    aks_runner: Callable[..., LocalHost],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vnode_batch")
    keys = [f"boot-{i}" for i in range(3)]
    for key in keys:
        aks_queues.submit({"id": key, "image": IMAGE, "command": ["sh", "-c", f"echo {key}"]})
    assert aks.arm.get(aks.cluster_id) is None  # an empty resource group

    nodes = _NodeWatch(aks)  # the reconciler deletes pods of reported Jobs: note where they ran
    with nodes, aks_runner() as runner:
        # While the cluster is being created the requests wait on the queue: no Job, no event.
        wait_for(
            lambda: (
                ((aks.arm.get(aks.cluster_id) or {}).get("properties") or {}).get("provisioningState") == "Creating"
            ),
            what="the cluster to be Creating",
        )
        assert aks.kube.jobs(NS) == []
        assert aks_queues.events.peek_messages(max_messages=32) == []
        assert aks_queues.count(aks_queues.requests) >= 1

        wait_for(lambda: len(aks.kube.jobs(NS)) == len(keys), what="one Job per request")
        events = wait_for(
            lambda: _events_until(aks_queues, len(keys)), timeout=30, what="a completion event per request"
        )
        runner.run_until_idle(timeout=30)

    # Exactly one Job per request, on the virtual node, each reported once by the reconciler.
    assert sorted(j["metadata"]["name"] for j in aks.kube.jobs(NS)) == sorted(job_name_for(k) for k in keys)
    assert nodes.seen == {"virtual-node-aci-linux"}
    assert sorted(e["data"]["requestKey"] for e in events) == sorted(keys)
    assert {e["type"] for e in events} == {"io.vnodebatch.job.succeeded"}
    assert aks_queues.count(aks_queues.poison) == 0

    # Deferred while waiting, and the bootstrap advanced one step after another across invocations.
    deferrals = [r for r in caplog.records if r.name == "vnode_batch.dispatch" and "deferred" in r.getMessage()]
    assert len({r.getMessage().split(" key ")[1].split(" ")[0] for r in deferrals}) == len(keys)
    steps_seen = _steps_in_order(caplog)
    assert steps_seen == sorted(steps_seen, key=STEP_ORDER.index), steps_seen
    assert {"network", "cluster", "virtual-node-addon"} <= set(steps_seen), steps_seen

    _assert_seed_topology(aks)


class _NodeWatch:
    """Records the nodes the Jobs' pods were scheduled on, polling while the test runs."""

    def __init__(self, aks: AksWorld) -> None:
        self.seen: set[str] = set()
        self._aks = aks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            for pod in self._aks.kube.pods(NS):
                if pod["spec"].get("nodeName"):
                    self.seen.add(pod["spec"]["nodeName"])

    def __enter__(self) -> _NodeWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _events_until(queues: Queues, count: int) -> list[dict[str, Any]] | None:
    seen = [json.loads(str(m.content)) for m in queues.events.peek_messages(max_messages=32)]
    return seen if len(seen) >= count else None


def _steps_in_order(caplog: pytest.LogCaptureFixture) -> list[str]:
    steps: list[str] = []
    for r in caplog.records:
        text = r.getMessage()
        if r.name == "vnode_batch.bootstrap" and text.startswith("bootstrap not ready: "):
            step = text.removeprefix("bootstrap not ready: ").split(":")[0]
            if not steps or steps[-1] != step:
                steps.append(step)
    return steps


def _assert_seed_topology(aks: AksWorld) -> None:
    """What the stand-in RECEIVED matches the seed's az commands (azure-brief.md §1)."""
    arm = aks.arm
    register = [r for r in arm.write_requests() if r.method == "POST"]
    assert [r.path.rsplit("/", 2)[-2] for r in register] == ["Microsoft.ContainerInstance"]

    vnet = body_of(aks.puts(r"/virtualNetworks/vnetAks$"), "vnet PUT")
    assert vnet["properties"]["addressSpace"]["addressPrefixes"] == ["10.0.0.0/8"]
    assert {s["name"]: s["properties"]["addressPrefix"] for s in vnet["properties"]["subnets"]} == {
        "AksSubnet": "10.240.0.0/16",
        "vNodeSubnet": "10.241.0.0/16",
    }
    assert aks.puts(r"/subnets/[^/]+$") == []  # created with the vnet, never alone, never replaced

    cluster_puts = aks.puts(r"/managedClusters/vnode-batch-aks$")
    assert [r.status for r in cluster_puts] == [201, 200]  # create, then enable the addon
    create, addon = cluster_puts[0].body, cluster_puts[1].body
    network_profile = create["properties"]["networkProfile"]
    assert network_profile["networkPlugin"] == "azure"
    assert "networkPluginMode" not in network_profile
    assert (network_profile["serviceCidr"], network_profile["dnsServiceIP"]) == ("10.0.0.0/16", "10.0.0.10")
    assert create["identity"] == {"type": "SystemAssigned"}
    assert create["properties"]["aadProfile"] == {"managed": True, "enableAzureRBAC": True}
    assert create["properties"]["disableLocalAccounts"] is True
    [pool] = create["properties"]["agentPoolProfiles"]
    assert pool["vnetSubnetID"].endswith("/virtualNetworks/vnetAks/subnets/AksSubnet")
    assert "addonProfiles" not in create["properties"]
    assert addon["properties"]["addonProfiles"]["aciConnectorLinux"] == {
        "enabled": True,
        "config": {"SubnetName": "vNodeSubnet"},
    }

    cluster = arm.get(aks.cluster_id)
    assert cluster is not None
    cluster_identity = cluster["identity"]["principalId"]
    addon_identity = cluster["properties"]["addonProfiles"]["aciConnectorLinux"]["identity"]["objectId"]
    grants = {}
    for r in aks.puts(r"/roleAssignments/"):
        scope = r.path.split("/providers/Microsoft.Authorization/")[0]
        props = r.body["properties"]
        grants[scope.rsplit("/", 1)[-1]] = (
            props["roleDefinitionId"].rsplit("/", 1)[-1],
            props["principalId"],
            props["principalType"],
            r.status,
        )
    assert grants == {
        "AksSubnet": (roles.NETWORK_CONTRIBUTOR, cluster_identity, "ServicePrincipal", 201),
        "vNodeSubnet": (roles.NETWORK_CONTRIBUTOR, addon_identity, "ServicePrincipal", 201),
        NS: (roles.AKS_RBAC_WRITER, arm.app_principal_id, "ServicePrincipal", 201),
    }
    namespace_scoped = [r for r in aks.puts(r"/roleAssignments/") if "/namespaces/" in r.path]
    assert namespace_scoped[0].path.startswith(f"{aks.cluster_id}/namespaces/{NS}/providers/")

    # The namespace is an AKS managed namespace, created through ARM (AKS Contributor covers
    # managedClusters/managedNamespaces/write); the app never asks Kubernetes for a Namespace,
    # which its namespace-scoped Azure RBAC role would not allow.
    [namespace_put] = aks.puts(rf"/managedClusters/vnode-batch-aks/managedNamespaces/{NS}$")
    assert (namespace_put.status, namespace_put.api_version) == (201, "2026-08-01")
    assert namespace_put.body == {
        "location": "westus",
        "tags": {"managed-by": "vnode-batch"},
        "properties": {
            "labels": dict(NAMESPACE_LABELS),  # managed-by, and Pod Security baseline (warn/audit restricted)
            # no defaultNetworkPolicy: the cluster has no network policy engine
            "adoptionPolicy": "Always",
            "deletePolicy": "Keep",
        },
    }
    managed = arm.get(f"{aks.cluster_id}/managedNamespaces/{NS}")
    assert managed is not None
    assert managed["properties"]["provisioningState"] == "Succeeded"
    namespace_calls = [
        (method, path)
        for method, path, _ in aks.kube.request_log
        if re.fullmatch(r"/api/v1/namespaces(/[^/]+)?/?", path)
    ]
    assert namespace_calls == []  # no POST /api/v1/namespaces (and no namespace read either)
    assert aks.kube.request_counts()[("POST", "/api/v1/namespaces")] == 0


def test_a_missing_permission_dead_letters_the_request_naming_role_and_scope(
    aks: AksWorld,
    aks_queues: Queues,
    aks_runner: Callable[..., LocalHost],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vnode_batch")
    aks.arm.revoke(aks.arm.app_principal_id, "Microsoft.Authorization/roleAssignments/write")
    aks_queues.submit({"id": "denied-1", "image": IMAGE, "correlationId": "c-denied"})

    # No grace for the missing role (in Azure it covers role assignments still propagating).
    with aks_runner(VNB_PERMISSION_GRACE_SECONDS="0"):
        [event] = wait_for(lambda: _events_until(aks_queues, 1), what="the dead-letter event")

    subnet_scope = (
        f"/subscriptions/{aks.arm.subscription_id}/resourceGroups/rg-aks/providers/Microsoft.Network/"
        "virtualNetworks/vnetAks/subnets/AksSubnet"
    )
    assert event["type"] == "io.vnodebatch.request.deadlettered"
    data = event["data"]
    assert data["reason"] == "ClusterNotReady"
    assert (data["requestKey"], data["correlationId"]) == ("denied-1", "c-denied")
    for words in (
        "cluster-subnet-role:",
        "grant Role Based Access Control Administrator",
        f"on /subscriptions/{aks.arm.subscription_id}/resourceGroups/rg-aks to the app identity",
        aks.arm.app_principal_id,
        f"Microsoft.Authorization/roleAssignments/write over {subnet_scope}",
    ):
        assert words in data["detail"], (words, data["detail"])
    blocked = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "vnode_batch.bootstrap"]
    assert blocked
    assert "Role Based Access Control Administrator" in blocked[0].getMessage()
    assert subnet_scope in blocked[0].getMessage()
    assert aks.kube.jobs(NS) == []
