"""The Job controller's pod tracking as in Kubernetes 1.31+: the ``batch.kubernetes.io/job-tracking``
finalizer, ``status.uncountedTerminatedPods`` and what a finalizer does to a pod's deletion
(devtools/standins/kube/controllers/job.py ``_track_and_remove_finalizers``, controllers/gc.py
``_delete_now``; sources cited there). Driven over HTTPS by the official client, as
test_kube_standin.py; a user sees these in ``kubectl get job -o yaml`` / ``kubectl get pods``.
"""

from __future__ import annotations

from typing import Any

from devtools.standins.kube.apiserver import KubeStandIn
from tests.conftest import wait_for
from tests.standins.test_kube_standin import (  # the same stand-in and clients as there
    NS,
    Clients,
    assert_schema_valid,
    conditions,
    finished,
    job_manifest,
)

TRACKING = "batch.kubernetes.io/job-tracking"


def pods_of(kube: KubeStandIn, name: str) -> list[dict[str, Any]]:
    return [p for p in kube.pods(NS) if p["metadata"]["labels"].get("job-name") == name]


def running(kube: KubeStandIn, name: str) -> dict[str, Any] | None:
    return next((p for p in pods_of(kube, name) if p["status"].get("phase") == "Running"), None)


def test_a_running_pod_carries_the_tracking_finalizer_and_a_finished_one_is_counted(
    kube: KubeStandIn, k8s: Clients
) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("long", "sleep 100000"))
    pod = wait_for(lambda: running(kube, "long"), what="the pod to run")
    assert pod["metadata"]["finalizers"] == [TRACKING]
    k8s.batch.create_namespaced_job(NS, job_manifest("short", "echo hi"))
    job = wait_for(lambda: finished(kube, "short"), what="the Job to complete")
    assert list(conditions(job)) == ["SuccessCriteriaMet", "Complete"]
    assert (job["status"]["succeeded"], job["status"]["uncountedTerminatedPods"]) == (1, {})
    [done] = pods_of(kube, "short")
    assert "finalizers" not in done["metadata"], "the finalizer goes once the pod is counted"
    assert_schema_valid(job)


def test_a_failed_status_update_leaves_the_pod_uncounted_until_the_retry(kube: KubeStandIn, k8s: Clients) -> None:
    kube.fail_job_status_updates(10_000)  # every update that would move the pod to succeeded fails
    k8s.batch.create_namespaced_job(NS, job_manifest("gap", "echo hi"))

    def uncounted() -> dict[str, Any] | None:
        job = kube.job(NS, "gap")
        listed = (job or {}).get("status", {}).get("uncountedTerminatedPods", {}).get("succeeded")
        return job if listed else None

    job = wait_for(uncounted, what="the pod to be recorded as uncounted")
    [pod] = pods_of(kube, "gap")
    assert job["status"]["uncountedTerminatedPods"] == {"succeeded": [pod["metadata"]["uid"]]}
    assert "succeeded" not in job["status"], "the counter moves only in the update that failed"
    assert list(conditions(job)) == ["SuccessCriteriaMet"], "no Complete while a pod is uncounted"
    assert "finalizers" not in pod["metadata"], "its finalizer was removed before the failed update"
    assert_schema_valid(job)
    kube.fail_job_status_updates(0)
    job = wait_for(lambda: finished(kube, "gap"), what="the retry to count the pod")
    assert (job["status"]["succeeded"], job["status"]["uncountedTerminatedPods"]) == (1, {})
    assert "Complete" in conditions(job)


def test_a_pod_deleted_at_once_stays_terminating_while_its_finalizer_holds_it(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("held", "sleep 100000", backoffLimit=0))
    pod = wait_for(lambda: running(kube, "held"), what="the pod to run")
    kube.pause_job_controller()  # nothing removes the finalizer meanwhile
    try:
        k8s.core.delete_namespaced_pod(pod["metadata"]["name"], NS, grace_period_seconds=0)
        [kept] = pods_of(kube, "held")
        assert kept["metadata"]["deletionTimestamp"]
        assert (kept["metadata"]["deletionGracePeriodSeconds"], kept["metadata"]["finalizers"]) == (0, [TRACKING])
    finally:
        kube.pause_job_controller(False)
    job = wait_for(lambda: finished(kube, "held"), what="the Job controller to count the deleted pod")
    assert not pods_of(kube, "held"), "gone once the controller removed its finalizer"
    assert conditions(job)["Failed"]["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 1
