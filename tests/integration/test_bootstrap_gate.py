"""The bootstrap engine and gate against the ARM and Kubernetes stand-ins, without the runner:
idempotence (a finished cluster costs no write), races between instances, throttling and
in-progress conflicts, permissions, the operator commands, and token reuse."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.base.conventions import VIRTUAL_NODE_NAME
from shared.cli import main as cli
from shared.cluster.plan.namespace import node_ready
from shared.cluster.readiness import Readiness
from tests.integration.bootstrap_fixtures import *  # noqa: F403
from tests.integration.bootstrap_fixtures import NS, AksWorld, drive

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def ready(aks: AksWorld) -> Readiness:
    readiness, reasons = drive(aks.gate())
    assert readiness.cluster is not None, reasons
    return readiness


@pytest.fixture
def run_cli(aks: AksWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., int]:
    monkeypatch.chdir(tmp_path)  # no local.settings.json: the environment is the configuration
    for key, value in aks.env.items():
        monkeypatch.setenv(key, value)
    return lambda *argv: cli.main(list(argv))


def test_a_finished_cluster_costs_no_write_and_the_ready_answer_no_call(
    aks: AksWorld, run_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    ready(aks)
    aks.arm.reset_records()

    # A new instance finds everything in place: GETs only.
    again = aks.gate(VNB_READY_CACHE_SECONDS="60")
    assert again.check().cluster is not None
    assert aks.writes() == []
    reads = len(aks.arm.requests)
    assert reads > 0

    # Within VNB_READY_CACHE_SECONDS the answer is cached: no ARM call, no Kubernetes call.
    kube_before = sum(aks.kube.request_counts().values())
    for _ in range(200):
        assert again.check().cluster is not None
    assert len(aks.arm.requests) == reads
    assert sum(aks.kube.request_counts().values()) == kube_before

    # The operator commands agree, and write nothing either.
    capsys.readouterr()
    assert run_cli("plan") == 0
    out = capsys.readouterr().out
    for step in ("provider", "network", "cluster", "virtual-node-addon", "namespace", "virtual-node"):
        assert step in out
    assert "create" not in out.split("nothing is changed", 1)[1]
    assert run_cli("bootstrap", "--timeout", "20", "--poll", "0.05") == 0
    assert "is ready" in capsys.readouterr().out
    assert aks.writes() == []


def test_plan_on_an_empty_resource_group_reads_and_says_what_it_would_create(
    aks: AksWorld, run_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("plan") == 0
    out = capsys.readouterr()
    assert "VNB_SERVICE_CIDR" in out.err  # the seed's documented warning
    lines = {line.split()[0]: line for line in out.out.splitlines() if line.split() and line.split()[0] in _STEPS}
    assert lines["provider"].split()[1] == "register"
    assert lines["network"].split()[1] == "create"
    assert "vnetAks 10.0.0.0/8" in lines["network"]
    assert lines["cluster"].split()[1] == "later"
    assert aks.writes() == []
    assert {r.method for r in aks.arm.requests} == {"GET"}


_STEPS = {
    "provider",
    "network",
    "cluster",
    "cluster-subnet-role",
    "virtual-node-addon",
    "vnode-subnet-role",
    "app-namespace-role",
    "namespace",
    "virtual-node",
}


def test_cli_bootstrap_builds_the_cluster(
    aks: AksWorld, run_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("bootstrap", "--timeout", "30", "--poll", "0.1") == 0
    assert f"node {VIRTUAL_NODE_NAME} Ready" in capsys.readouterr().out
    [node] = [n for n in aks.kube.nodes() if n["metadata"]["name"] == VIRTUAL_NODE_NAME]
    assert node_ready(node)
    cluster = aks.gate().check().cluster  # another instance: ready at once
    assert cluster is not None
    assert cluster.namespace_exists()


def test_two_instances_racing_create_each_resource_once(aks: AksWorld) -> None:
    gates = [aks.gate(), aks.gate()]
    answers: list[Readiness] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(gates))

    def run(index: int) -> None:
        try:
            start.wait()
            answers.append(drive(gates[index], pause=0.01)[0])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(gates))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=45)
    assert errors == []
    assert [a.cluster is not None for a in answers] == [True, True]

    created = collections.Counter(r.path.lower() for r in aks.arm.requests if r.method == "PUT" and r.status == 201)
    vnet = [p for p in created if p.endswith("/virtualnetworks/vnetaks")]
    cluster = [p for p in created if p.endswith("/managedclusters/vnode-batch-aks")]
    assert [created[p] for p in vnet] == [1]
    assert [created[p] for p in cluster] == [1]
    namespace = [p for p in created if p.endswith(f"/managednamespaces/{NS}")]
    assert [created[p] for p in namespace] == [1]
    # Same deterministic names on both instances: three assignments exist, not six.
    assert len(aks.arm.role_assignments()) == 3
    refused = [r for r in aks.arm.requests if r.status >= 400 and r.status not in (404, 409)]
    assert refused == []
    assert aks.kube.jobs(NS) == []


def test_throttling_and_in_progress_conflicts_are_waited_out(aks: AksWorld) -> None:
    # Long Retry-After: not slept on inside a call; the gate says "not ready" instead.
    aks.arm.throttle(3, retry_after_seconds=30, path_regex=r"/virtualNetworks/")
    # Short Retry-After: the SDK retries within the call.
    aks.arm.throttle(1, retry_after_seconds=0.1, path_regex=r"/providers/Microsoft\.ContainerInstance$")
    # Someone else's operation on the cluster: the create PUT meets 409 twice.
    aks.arm.fail(
        2,
        status=409,
        path_regex=r"/managedClusters/vnode-batch-aks$",
        method="PUT",
        code="OperationNotAllowed",
        message="Operation is not allowed because there's an in progress update managed cluster operation on "
        "'vnode-batch-aks'. Please try again later.",
    )
    readiness, reasons = drive(aks.gate())
    assert readiness.cluster is not None, reasons
    assert any("throttling" in r and "retry after 30 s" in r for r in reasons), reasons
    assert any("in progress" in r for r in reasons), reasons
    statuses = [r.status for r in aks.arm.requests]
    assert statuses.count(429) == 4
    assert statuses.count(409) == 2


def test_a_provider_the_app_may_not_register_is_reported_with_the_fix(make_aks: Callable[..., AksWorld]) -> None:
    aks = make_aks(register=False)
    readiness, _ = drive(aks.gate())
    assert readiness.hopeless
    assert readiness.reason.startswith("provider: ")
    assert "az provider register --namespace Microsoft.ContainerInstance" in readiness.reason
    assert aks.arm.app_principal_id in readiness.reason
    assert aks.writes()[0].status == 403


def test_the_kubernetes_token_is_fetched_once_not_per_request(aks: AksWorld) -> None:
    cluster = ready(aks).cluster
    assert cluster is not None
    aks_tokens = [t for t in aks.arm.token_requests if "6dae42f8" in (t.resource or "")]
    assert len(aks_tokens) == 1
    for _ in range(50):
        assert cluster.get_node(VIRTUAL_NODE_NAME) is not None
        cluster.list_jobs(label_selector="app.kubernetes.io/managed-by=vnode-batch", limit=10)
    assert [t for t in aks.arm.token_requests if "6dae42f8" in (t.resource or "")] == aks_tokens


def test_an_unreadable_provider_state_does_not_stop_the_bootstrap(make_aks: Callable[..., AksWorld]) -> None:
    aks = make_aks(register=False)
    aks.arm.fail(
        1000,
        status=403,
        path_regex=r"/providers/Microsoft\.ContainerInstance$",
        method="GET",
        code="AuthorizationFailed",
        message="no subscription-scope read",
    )
    gate = aks.gate()
    reasons: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        readiness = gate.check()
        if not reasons or reasons[-1] != readiness.reason:
            reasons.append(readiness.reason)
        if "not registered" in readiness.reason or readiness.hopeless:
            break
        time.sleep(0.05)
    # The network and the cluster were built; the addon PUT then says what is missing, and
    # waiting is still possible (an operator may register the provider meanwhile).
    assert readiness.reason.startswith("virtual-node-addon: "), reasons
    assert "az provider register" in readiness.reason
    assert not readiness.hopeless
    assert aks.arm.get(aks.cluster_id) is not None


def test_the_namespace_is_a_managed_namespace_made_through_arm_not_kubernetes(aks: AksWorld) -> None:
    # With Azure RBAC the app holds AKS RBAC Writer on its namespace only: a Namespace (cluster
    # scope) is out of its reach in Kubernetes, so it asks ARM for an AKS managed namespace.
    ready(aks)
    managed = aks.arm.get(f"{aks.cluster_id}/managedNamespaces/{NS}")
    assert managed is not None
    assert managed["properties"]["provisioningState"] == "Succeeded"
    with aks.kube.cluster.lock:
        assert NS in aks.kube.cluster.namespaces  # made by "AKS" when the managed namespace succeeded
    assert not [r for r in aks.kube.request_log if r[0] == "POST" and r[1] == "/api/v1/namespaces"]


def test_a_namespace_made_earlier_is_adopted(aks: AksWorld) -> None:
    # An earlier version created the namespace through Kubernetes (or an operator did, with
    # kubectl): adoptionPolicy Always takes it over instead of failing.
    aks.arm.on_namespace_created = None  # keep the stand-in from creating it: it exists already
    with aks.kube.cluster.lock:
        aks.kube.cluster.create_namespace({"metadata": {"name": NS}})
    ready(aks)
    [put] = [r for r in aks.arm.requests if r.method == "PUT" and r.path.endswith(f"/managedNamespaces/{NS}")]
    assert put.body["properties"]["adoptionPolicy"] == "Always"


def test_a_missing_managed_namespace_permission_names_the_role(aks: AksWorld) -> None:
    aks.arm.revoke(aks.arm.app_principal_id, "Microsoft.ContainerService/managedClusters/managedNamespaces/write")
    readiness, _ = drive(aks.gate())
    assert readiness.hopeless
    assert readiness.reason.startswith("namespace: grant Azure Kubernetes Service Contributor Role")
    assert "the failed action was Microsoft.ContainerService/managedClusters/managedNamespaces/write" in (
        readiness.reason
    )
    assert aks.kube.jobs(NS) == []
