"""The Kubernetes semantics the reconciler's Lost detection rests on, checked on the stand-in.

Every Job the app creates carries the ``vnode-batch.io/report`` finalizer. A delete then only
marks the Job (``deletionTimestamp``, Terminating); it stays readable — and keeps its pods
with Background propagation — until the reconciler has reported it and removed the finalizer.
Jobs without finalizers behave as before (tests/standins cover that).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from devtools.standins.kube.apiserver import KubeStandIn
from shared.adapters.kube import Cluster, from_kubeconfig_dict
from shared.base.conventions import FINALIZER_REPORT
from shared.flows.reconcile import KubeJobs
from shared.job.logs import strip_timestamps
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

NS = "vnode-batch"


def manifest(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "vnode-batch"},
            "finalizers": [FINALIZER_REPORT],
        },
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {
                        "kubernetes.io/role": "agent",
                        "kubernetes.io/os": "linux",
                        "type": "virtual-kubelet",
                    },
                    "tolerations": [
                        {"key": "virtual-kubelet.io/provider", "operator": "Exists"},
                        {"key": "azure.com/aci", "effect": "NoSchedule"},
                    ],
                    "containers": [
                        {
                            "name": "main",
                            "image": "mcr.microsoft.com/azurelinux/busybox:1.36",
                            "command": ["sh", "-c", script],
                        }
                    ],
                }
            },
            **spec,
        },
    }


@pytest.fixture
def cluster(kube: KubeStandIn) -> Cluster:
    return Cluster(from_kubeconfig_dict(kube.kubeconfig_dict(), context=None, timeout=5), NS)


def pods_of(kube: KubeStandIn, name: str) -> list[dict[str, Any]]:
    return [p for p in kube.pods(NS) if p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == name]


def release(cluster: Cluster, name: str) -> None:
    job = cluster.get_job(name)
    assert job is not None
    KubeJobs(cluster).mark_reported(
        name,
        reported_at="2026-11-27T00:00:00Z",
        finalizers=[f for f in job["metadata"].get("finalizers") or [] if f != FINALIZER_REPORT],
        resource_version=job["metadata"]["resourceVersion"],
    )


def test_background_delete_waits_for_the_finalizer_then_collects_the_pods(kube: KubeStandIn, cluster: Cluster) -> None:
    cluster.create_job(manifest("held", "echo working; sleep 30"))
    wait_for(lambda: [p for p in pods_of(kube, "held") if p["status"]["phase"] == "Running"], what="a running pod")
    kube.delete_job_behind_the_apps_back(NS, "held")
    job = cluster.get_job("held")
    assert job is not None, "the finalizer keeps the Job readable"
    assert job["metadata"]["deletionTimestamp"]
    assert job["metadata"]["finalizers"] == [FINALIZER_REPORT]
    assert cluster.delete_job("held") is True  # deleting again is accepted and changes nothing
    time.sleep(0.1)
    assert pods_of(kube, "held"), "Background: the pods live until the Job is really gone"
    text = cluster.pod_log(pods_of(kube, "held")[0]["metadata"]["name"], tail_lines=5, limit_bytes=1000)
    assert text is not None
    assert strip_timestamps(text) == "working\n"  # the virtual node prefixes ACI's timestamps
    release(cluster, "held")
    wait_for(lambda: cluster.get_job("held") is None, what="the Job to go once released")
    wait_for(lambda: not pods_of(kube, "held"), what="the garbage collector to delete the pods")


def test_ttl_or_foreground_delete_removes_pods_but_the_finalizer_still_holds_the_job(
    kube: KubeStandIn, cluster: Cluster
) -> None:
    cluster.create_job(manifest("ttl", "echo quick", ttlSecondsAfterFinished=0))
    wait_for(
        lambda: (kube.job(NS, "ttl") or {}).get("metadata", {}).get("deletionTimestamp") and not pods_of(kube, "ttl"),
        what="the TTL controller to delete the finished Job's pods",
    )
    job = cluster.get_job("ttl")
    assert job is not None
    assert job["metadata"]["deletionTimestamp"]
    assert job["metadata"]["finalizers"] == [FINALIZER_REPORT]  # foregroundDeletion is done
    assert any(c["type"] == "Complete" for c in job["status"]["conditions"])
    release(cluster, "ttl")
    wait_for(lambda: cluster.get_job("ttl") is None, what="the Job to go")


def test_orphaning_delete_with_a_finalizer(kube: KubeStandIn, cluster: Cluster) -> None:
    cluster.create_job(manifest("orph", "echo x"))
    wait_for(lambda: (kube.job(NS, "orph") or {}).get("status", {}).get("succeeded"), what="the Job to succeed")
    cluster.delete_job("orph", propagation="Orphan")
    job = cluster.get_job("orph")
    assert job is not None
    wait_for(
        lambda: (cluster.get_job("orph") or {}).get("metadata", {}).get("finalizers") == [FINALIZER_REPORT],
        what="orphaning",
    )
    assert all("ownerReferences" not in p["metadata"] for p in pods_of(kube, "orph"))
    release(cluster, "orph")
    wait_for(lambda: cluster.get_job("orph") is None, what="the Job to go")
    assert pods_of(kube, "orph"), "orphaned pods stay"


def test_mark_reported_is_a_compare_and_swap(kube: KubeStandIn, cluster: Cluster) -> None:
    from shared.adapters.kube import Conflict

    cluster.create_job(manifest("cas", "echo x"))
    job = cluster.get_job("cas")
    assert job is not None
    stale = job["metadata"]["resourceVersion"]
    cluster.patch_job_metadata("cas", annotations={"example.com/touched": "yes"})
    with pytest.raises(Conflict):
        KubeJobs(cluster).mark_reported(
            "cas", reported_at="2026-11-27T00:00:00Z", finalizers=[], resource_version=stale
        )
