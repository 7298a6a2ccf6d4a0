"""The Kubernetes API stand-in, driven over real HTTPS by the official client.

Each test checks something the app (or a user reading ``kubectl get``) would notice: where a
Job's pods land, which conditions and reasons a finished Job carries, what the error bodies
look like, and that paging, deletes, faults and restarts behave like a real apiserver.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import kubernetes
import kubernetes_validate
import pytest
import urllib3
from kubernetes.client import ApiClient, ApiException, BatchV1Api, CoreV1Api

from devtools.standins.kube.apiserver import SYSTEM_NODE, VIRTUAL_NODE, KubeStandIn
from tests.conftest import wait_for

NS = "vnode-batch"
K8S_VERSION = "1.33"
T = TypeVar("T")

VNODE_SELECTOR = {"kubernetes.io/role": "agent", "kubernetes.io/os": "linux", "type": "virtual-kubelet"}
VNODE_TOLERATIONS = [
    {"key": "virtual-kubelet.io/provider", "operator": "Exists"},
    {"key": "azure.com/aci", "effect": "NoSchedule"},
]


def job_manifest(
    name: str,
    script: str | None = "echo hello",
    *,
    image: str = "mcr.microsoft.com/azurelinux/busybox:1.36",
    virtual: bool = True,
    tolerations: bool = True,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image}
    if script is not None:
        container["command"] = ["sh", "-c", script]
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if virtual:
        pod_spec["nodeSelector"] = dict(VNODE_SELECTOR)
        if tolerations:
            pod_spec["tolerations"] = [dict(t) for t in VNODE_TOLERATIONS]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels or {"app.kubernetes.io/managed-by": "vnode-batch"}},
        "spec": {"template": {"spec": pod_spec}, **spec},
    }


_ACI_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6,9}Z ")


def aci_text(log: str) -> str:
    """A virtual-node log without ACI's timestamps (azure-aci ``ListLogs`` always asks for them)."""
    lines = log.splitlines(keepends=True)
    assert all(_ACI_STAMP.match(line) for line in lines), log
    return "".join(_ACI_STAMP.sub("", line) for line in lines)


def conditions(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in job.get("status", {}).get("conditions") or []}


def finished(kube: KubeStandIn, name: str) -> dict[str, Any] | None:
    job = kube.job(NS, name)
    if job and ({"Complete", "Failed"} & set(conditions(job))):
        return job
    return None


def job_pods(kube: KubeStandIn, name: str) -> list[dict[str, Any]]:
    return [p for p in kube.pods(NS) if p["metadata"]["labels"].get("job-name") == name]


def assert_schema_valid(obj: dict[str, Any]) -> None:
    """Strict: an unknown field (a typo in the stand-in) fails too."""
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


class Clients:
    def __init__(self, kube: KubeStandIn, token: str | None = "standin-token") -> None:
        cfg = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config_from_dict(kube.kubeconfig_dict(token=token), client_configuration=cfg)
        cfg.retries = False  # see the stand-in's faults as they are
        self.api = ApiClient(cfg)
        self.batch = BatchV1Api(self.api)
        self.core = CoreV1Api(self.api)

    def raw(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """The app's adapter path: param_serialize + call_api with plain dicts, raw JSON back."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        m, url, h, b, _ = self.api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        resp = self.api.call_api(m, url, h, b)
        data = resp.read()
        ctype = resp.getheader("Content-Type") or ""
        return resp.status, json.loads(data) if "json" in ctype else data.decode()


# --------------------------------------------------------------------------- scheduling on the virtual node


def test_virtual_node_job_runs_on_aci_node_to_complete(kube: KubeStandIn, k8s: Clients) -> None:
    created = k8s.batch.create_namespaced_job(
        NS, job_manifest("hello", "echo started; sleep 1; echo done", ttlSecondsAfterFinished=3600)
    )
    assert created.metadata.uid
    assert created.metadata.resource_version
    assert created.metadata.creation_timestamp
    assert created.spec.backoff_limit == 6
    assert created.spec.completions == 1
    assert created.spec.completion_mode == "NonIndexed"
    assert created.spec.template.metadata.labels["batch.kubernetes.io/job-name"] == "hello"
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": created.metadata.uid}

    job = wait_for(lambda: finished(kube, "hello"), what="the job to finish")
    assert list(conditions(job)) == ["SuccessCriteriaMet", "Complete"]
    assert conditions(job)["Complete"]["reason"] == "CompletionsReached"
    assert job["status"]["succeeded"] == 1
    assert "failed" not in job["status"]
    assert job["status"]["completionTime"] >= job["status"]["startTime"]
    [pod] = job_pods(kube, "hello")
    assert pod["spec"]["nodeName"] == VIRTUAL_NODE
    assert pod["metadata"]["name"].startswith("hello-")
    assert len(pod["metadata"]["name"]) == len("hello-") + 5
    assert pod["metadata"]["ownerReferences"][0] | {"uid": ""} == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "hello",
        "uid": "",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Succeeded", 0, "Completed")
    assert aci_text(k8s.core.read_namespaced_pod_log(pod["metadata"]["name"], NS)) == "started\ndone\n"

    # what the typed client reads back, and the raw JSON, are valid Kubernetes objects
    assert k8s.batch.read_namespaced_job("hello", NS).status.conditions[-1].type == "Complete"
    status, raw = k8s.raw("GET", f"/apis/batch/v1/namespaces/{NS}/jobs/hello")
    assert status == 200
    assert_schema_valid(raw)
    assert_schema_valid(pod)
    for node in kube.nodes():
        assert_schema_valid(node)


def test_nodes_look_like_aks_with_the_virtual_node_addon(kube: KubeStandIn, k8s: Clients) -> None:
    nodes = {n.metadata.name: n for n in k8s.core.list_node().items}
    assert set(nodes) == {SYSTEM_NODE, VIRTUAL_NODE}
    vnode = nodes[VIRTUAL_NODE]
    assert vnode.metadata.labels["type"] == "virtual-kubelet"
    assert vnode.metadata.labels["alpha.service-controller.kubernetes.io/exclude-balancer"] == "true"
    assert [(t.key, t.value, t.effect) for t in vnode.spec.taints] == [
        ("virtual-kubelet.io/provider", "azure", "NoSchedule")
    ]
    assert [c.status for c in vnode.status.conditions if c.type == "Ready"] == ["True"]
    assert not nodes[SYSTEM_NODE].spec.taints
    kube.set_node_ready(VIRTUAL_NODE, False)
    assert [c.status for c in k8s.core.read_node(VIRTUAL_NODE).status.conditions if c.type == "Ready"] == ["False"]


def test_job_without_tolerations_stays_pending_unschedulable(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("no-tol", tolerations=False))
    pod = wait_for(lambda: next(iter(job_pods(kube, "no-tol")), None), what="the job's pod")
    cond = wait_for(
        lambda: next(
            (c for c in (job_pods(kube, "no-tol")[0]["status"].get("conditions") or []) if c["type"] == "PodScheduled"),
            None,
        ),
        what="a scheduling verdict",
    )
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    assert cond["message"].startswith(
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {virtual-kubelet.io/provider: azure}."
    )
    time.sleep(0.1)  # several controller passes: still nothing runs
    [pod] = job_pods(kube, "no-tol")
    assert pod["status"]["phase"] == "Pending"
    assert "nodeName" not in pod["spec"]
    job = kube.job(NS, "no-tol")
    assert job is not None
    assert job["status"]["active"] == 1
    assert not conditions(job)
    assert_schema_valid(pod)


def test_pods_wait_for_a_ready_virtual_node(kube: KubeStandIn, k8s: Clients) -> None:
    kube.set_node_ready(VIRTUAL_NODE, False)
    k8s.batch.create_namespaced_job(NS, job_manifest("waits"))
    wait_for(lambda: "not-ready" in json.dumps(job_pods(kube, "waits")), what="the not-ready verdict")
    assert kube.job(NS, "waits")["status"].get("succeeded") is None  # type: ignore[index]
    kube.set_node_ready(VIRTUAL_NODE, True)
    wait_for(lambda: finished(kube, "waits"), what="the job to run once the node is Ready")
    assert job_pods(kube, "waits")[0]["spec"]["nodeName"] == VIRTUAL_NODE


# --------------------------------------------------------------------------- errors


def test_duplicate_create_is_409_already_exists(k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("dup"))
    with pytest.raises(ApiException) as err:
        k8s.batch.create_namespaced_job(NS, job_manifest("dup"))
    assert err.value.status == 409
    assert json.loads(err.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'jobs.batch "dup" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "dup", "group": "batch", "kind": "jobs"},
        "code": 409,
    }
    # the raw path the app's adapter uses sees the same
    status, body = k8s.raw("POST", f"/apis/batch/v1/namespaces/{NS}/jobs", body=job_manifest("dup"))
    assert (status, body["reason"]) == (409, "AlreadyExists")


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda j: j["metadata"].update(name="Bad_Name"), "metadata.name", "FieldValueInvalid"),
        (lambda j: j["metadata"].update(name="x" * 64), "metadata.name", "FieldValueInvalid"),
        (
            lambda j: j["spec"]["template"]["spec"]["containers"][0].pop("image"),
            "spec.template.spec.containers[0].image",
            "FieldValueRequired",
        ),
        (
            lambda j: j["spec"]["template"]["spec"].pop("restartPolicy"),
            "spec.template.spec.restartPolicy",
            "FieldValueNotSupported",
        ),
    ],
)
def test_invalid_job_is_422_with_field_causes(
    k8s: Clients, mutate: Callable[[dict[str, Any]], Any], field: str, reason: str
) -> None:
    manifest = job_manifest("ok-name")
    mutate(manifest)
    status, body = k8s.raw("POST", f"/apis/batch/v1/namespaces/{NS}/jobs", body=manifest)
    assert (status, body["reason"], body["code"]) == (422, "Invalid", 422)
    assert body["details"]["kind"] == "Job"
    assert body["details"]["group"] == "batch"
    assert [(c["field"], c["reason"]) for c in body["details"]["causes"]] == [(field, reason)]
    assert body["message"].startswith(f'Job.batch "{manifest["metadata"]["name"]}" is invalid: {field}: ')


def test_unknown_namespace_route_and_token(kube: KubeStandIn, k8s: Clients) -> None:
    status, body = k8s.raw("POST", "/apis/batch/v1/namespaces/nope/jobs", body=job_manifest("x"))
    assert (status, body["reason"], body["message"]) == (404, "NotFound", 'namespaces "nope" not found')
    status, body = k8s.raw("GET", "/apis/batch/v1/namespaces/vnode-batch/cronjobs")
    assert (status, body["kind"], body["reason"]) == (404, "Status", "NotFound")
    with pytest.raises(ApiException) as err:
        k8s.batch.read_namespaced_job("missing", NS)
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'jobs.batch "missing" not found'


def test_token_validator_rejects_with_401() -> None:
    with KubeStandIn(token_validator=lambda token: token == "good") as kube:
        assert Clients(kube, token="good").core.list_namespace().items
        for token in ("bad", None):
            with pytest.raises(ApiException) as err:
                Clients(kube, token=token).core.list_namespace()
            assert err.value.status == 401
            assert json.loads(err.value.body)["reason"] == "Unauthorized"


def test_namespaces_create_and_conflict(k8s: Clients) -> None:
    created = k8s.core.create_namespace({"metadata": {"name": "team-a"}})
    assert created.status.phase == "Active"
    assert created.metadata.labels["kubernetes.io/metadata.name"] == "team-a"
    with pytest.raises(ApiException) as err:
        k8s.core.create_namespace({"metadata": {"name": "team-a"}})
    assert err.value.status == 409
    assert json.loads(err.value.body)["reason"] == "AlreadyExists"
    assert {"default", NS, "team-a"} <= {n.metadata.name for n in k8s.core.list_namespace().items}


# --------------------------------------------------------------------------- lists


def test_label_selector_pages_return_each_job_once(kube: KubeStandIn, k8s: Clients) -> None:
    for i in range(23):
        state = "unreported" if i % 3 else "reported"
        k8s.batch.create_namespaced_job(
            NS, job_manifest(f"job-{i:02d}", labels={"app.kubernetes.io/managed-by": "vnode-batch", "state": state})
        )
    k8s.batch.create_namespaced_job(NS, job_manifest("other", labels={"app": "someone-else"}))
    selector = "app.kubernetes.io/managed-by=vnode-batch,state!=reported"
    expected = {f"job-{i:02d}" for i in range(23) if i % 3}
    seen: list[str] = []
    token = None
    deleted = False
    while True:
        page = k8s.batch.list_namespaced_job(NS, label_selector=selector, limit=4, _continue=token)
        assert len(page.items) <= 4
        seen += [j.metadata.name for j in page.items]
        if not deleted:  # deletes between pages must not make the next page skip or repeat
            k8s.batch.delete_namespaced_job(page.items[0].metadata.name, NS, propagation_policy="Background")
            k8s.batch.delete_namespaced_job("job-22", NS, propagation_policy="Background")
            deleted = True
        token = page.metadata._continue
        if not token:
            break
    assert len(seen) == len(set(seen))
    # Continuation pages read the first page's revision (apiserver storage/etcd3/store.go
    # GetList): job-22, deleted after the first page, is still listed.
    assert set(seen) == expected
    assert seen == sorted(seen)


def test_a_continue_token_expires_with_410_after_compaction(kube: KubeStandIn, k8s: Clients) -> None:
    for i in range(6):
        k8s.batch.create_namespaced_job(NS, job_manifest(f"exp-{i}", labels={"case": "expiry"}))
    page = k8s.batch.list_namespaced_job(NS, label_selector="case=expiry", limit=2)
    assert page.metadata._continue
    kube.expire_continue_tokens()
    with pytest.raises(ApiException) as raised:
        k8s.batch.list_namespaced_job(NS, label_selector="case=expiry", limit=2, _continue=page.metadata._continue)
    assert raised.value.status == 410
    assert json.loads(raised.value.body)["reason"] == "Expired"
    again = k8s.batch.list_namespaced_job(NS, label_selector="case=expiry", limit=10)  # a new list works
    assert [j.metadata.name for j in again.items] == [f"exp-{i}" for i in range(6)]


def test_unfiltered_page_reports_remaining_items(kube: KubeStandIn, k8s: Clients) -> None:
    kube.seed_finished_jobs(NS, 30, labels={"state": "reported"}, with_pods=False)
    page = k8s.batch.list_namespaced_job(NS, limit=10)
    assert page.metadata.remaining_item_count == 20
    assert page.metadata._continue
    assert int(page.metadata.resource_version) > 0
    status, body = k8s.raw(
        "GET", f"/apis/batch/v1/namespaces/{NS}/jobs", query=[("limit", 5), ("continue", "not-a-token")]
    )
    assert (status, body["reason"]) == (400, "BadRequest")


def test_seeded_jobs_page_quickly_by_label(kube: KubeStandIn, k8s: Clients) -> None:
    kube.seed_finished_jobs(NS, 3000, labels={"app.kubernetes.io/managed-by": "vnode-batch", "state": "reported"})
    kube.seed_finished_jobs(
        NS,
        7,
        labels={"app.kubernetes.io/managed-by": "vnode-batch", "state": "unreported"},
        succeeded=False,
        name_prefix="fresh",
    )
    page = k8s.batch.list_namespaced_job(
        NS, label_selector="app.kubernetes.io/managed-by=vnode-batch,state=unreported", limit=500
    )
    assert [j.metadata.name for j in page.items] == [f"fresh-{i:06d}" for i in range(7)]
    assert all(j.status.conditions[-1].type == "Failed" for j in page.items)
    assert not page.metadata._continue
    assert len(kube.pods(NS)) == 3007
    assert_schema_valid(kube.job(NS, "seed-000000") or {})
    assert_schema_valid(kube.pods(NS)[0])
    seeded_pod = job_pods(kube, "fresh-000003")[0]
    assert seeded_pod["status"]["phase"] == "Failed"


def test_pod_field_selectors(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("runs"))
    k8s.batch.create_namespaced_job(NS, job_manifest("stuck", tolerations=False))
    wait_for(lambda: finished(kube, "runs"), what="the job to finish")
    on_vnode = k8s.core.list_namespaced_pod(NS, field_selector=f"spec.nodeName={VIRTUAL_NODE}").items
    pending = k8s.core.list_namespaced_pod(NS, field_selector="status.phase=Pending").items
    assert [p.metadata.labels["job-name"] for p in on_vnode] == ["runs"]
    assert [p.metadata.labels["job-name"] for p in pending] == ["stuck"]
    assert len(k8s.core.list_pod_for_all_namespaces(label_selector="job-name").items) == 2


# --------------------------------------------------------------------------- deletes


def test_background_delete_removes_the_pods(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("bg"))
    wait_for(lambda: finished(kube, "bg"), what="the job to finish")
    status, body = k8s.raw(
        "DELETE", f"/apis/batch/v1/namespaces/{NS}/jobs/bg", query=[("propagationPolicy", "Background")]
    )
    assert (status, body["kind"], body["status"], body["details"]["name"]) == (200, "Status", "Success", "bg")
    assert kube.job(NS, "bg") is None
    wait_for(lambda: not job_pods(kube, "bg"), what="the garbage collector to delete the pods")


def test_default_delete_orphans_the_pods(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("orphan"))
    wait_for(lambda: finished(kube, "orphan"), what="the job to finish")
    k8s.batch.delete_namespaced_job("orphan", NS)  # batch/v1 default: orphan, as `kubectl --cascade=orphan`
    wait_for(lambda: kube.job(NS, "orphan") is None, what="the job to go")
    [pod] = job_pods(kube, "orphan")
    assert "ownerReferences" not in pod["metadata"]
    assert pod["status"]["phase"] == "Succeeded"


def test_foreground_delete_removes_pods_then_job(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("fg", "sleep 1000"))
    wait_for(lambda: job_pods(kube, "fg"), what="the pod")
    status, body = k8s.raw(
        "DELETE", f"/apis/batch/v1/namespaces/{NS}/jobs/fg", body={"propagationPolicy": "Foreground"}
    )
    assert status == 200
    assert body["kind"] == "Job"
    assert "foregroundDeletion" in body["metadata"]["finalizers"]
    assert body["metadata"]["deletionTimestamp"]
    wait_for(lambda: kube.job(NS, "fg") is None and not job_pods(kube, "fg"), what="pods and job to go")


def test_delete_behind_the_apps_back(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("gone"))
    kube.delete_job_behind_the_apps_back(NS, "gone")
    with pytest.raises(ApiException) as err:
        k8s.batch.read_namespaced_job("gone", NS)
    assert err.value.status == 404


# --------------------------------------------------------------------------- failures


def test_exit_code_fails_the_job_after_backoff_limit_retries(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("exits", "echo trying; exit 3", backoffLimit=2))
    job = wait_for(lambda: finished(kube, "exits"), what="the job to fail")
    assert list(conditions(job)) == ["FailureTarget", "Failed"]
    failed = conditions(job)["Failed"]
    assert (failed["reason"], failed["message"]) == (
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    )
    assert job["status"]["failed"] == 3
    assert "completionTime" not in job["status"]
    pods = job_pods(kube, "exits")
    assert len(pods) == 3
    assert len({p["metadata"]["name"] for p in pods}) == 3
    # azure-aci loses the exit code (containergroup_to_pod.go; azure-aci#417): the pod failed, yet
    # its container reads "Completed" with exitCode 0. test_virtual_node covers reports_exit_codes.
    assert {p["status"]["phase"] for p in pods} == {"Failed"}
    assert {p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods} == {0}
    assert {p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] for p in pods} == {"Completed"}
    assert_schema_valid(job)


def test_fail_once_succeeds_on_the_retry(kube: KubeStandIn) -> None:
    k8s = Clients(kube)
    k8s.batch.create_namespaced_job(NS, job_manifest("flaky", "fail-once; echo second try"))
    job = wait_for(lambda: finished(kube, "flaky"), what="the job to finish")
    assert "Complete" in conditions(job)
    assert (job["status"]["failed"], job["status"]["succeeded"]) == (1, 1)


def test_active_deadline_fails_with_deadline_exceeded(kube: KubeStandIn, k8s: Clients) -> None:
    # 1 simulated second of deadline against 1000 of sleep (time_scale 0.01 → 10 ms vs 10 s)
    k8s.batch.create_namespaced_job(NS, job_manifest("slow", "sleep 1000", activeDeadlineSeconds=1))
    job = wait_for(lambda: finished(kube, "slow"), what="the deadline")
    assert conditions(job)["Failed"]["reason"] == "DeadlineExceeded"
    assert conditions(job)["Failed"]["message"] == "Job was active longer than specified deadline"
    assert "active" not in job["status"]
    wait_for(lambda: not job_pods(kube, "slow"), what="the active pod to be deleted")


def test_indexed_job_with_backoff_limit_per_index_reports_failed_indexes(kube: KubeStandIn, k8s: Clients) -> None:
    manifest = job_manifest(
        "array",
        'echo "item $JOB_COMPLETION_INDEX"; fail-on-index 1,3',
        completions=5,
        parallelism=5,
        completionMode="Indexed",
        backoffLimitPerIndex=1,
    )
    created = k8s.batch.create_namespaced_job(NS, manifest)
    assert created.spec.backoff_limit == 2147483647
    job = wait_for(lambda: finished(kube, "array"), what="the indexed job to finish")
    st = job["status"]
    assert (st["completedIndexes"], st["failedIndexes"]) == ("0,2,4", "1,3")
    assert (st["succeeded"], st["failed"]) == (3, 4)  # each failing index: first try + one retry
    assert list(conditions(job)) == ["FailureTarget", "Failed"]
    assert conditions(job)["Failed"]["reason"] == "FailedIndexes"
    pods = job_pods(kube, "array")
    by_index = sorted(
        (p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"], p["status"]["phase"]) for p in pods
    )
    assert by_index == [
        ("0", "Succeeded"),
        ("1", "Failed"),
        ("1", "Failed"),
        ("2", "Succeeded"),
        ("3", "Failed"),
        ("3", "Failed"),
        ("4", "Succeeded"),
    ]
    pod2 = next(p for p in pods if p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "2")
    assert pod2["metadata"]["name"].startswith("array-2-")
    assert aci_text(k8s.core.read_namespaced_pod_log(pod2["metadata"]["name"], NS)) == "item 2\n"
    assert {
        "name": "JOB_COMPLETION_INDEX",
        "valueFrom": {
            "fieldRef": {
                "apiVersion": "v1",
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']",
            }
        },
    } in pod2["spec"]["containers"][0]["env"]
    assert_schema_valid(pod2)
    assert_schema_valid(job)


def test_provider_failed_on_the_virtual_node(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(
        NS, job_manifest("aci-503", image="myregistry.azurecr.io/provider-failed:1", backoffLimit=0)
    )
    job = wait_for(lambda: finished(kube, "aci-503"), what="the job to fail")
    assert conditions(job)["Failed"]["reason"] == "BackoffLimitExceeded"
    [pod] = job_pods(kube, "aci-503")
    assert (pod["status"]["phase"], pod["status"]["reason"]) == ("Failed", "ProviderFailed")
    # azure-aci returns the ARM SDK's error as is (azcore ResponseError.Error())
    message = pod["status"]["message"]
    assert message.startswith("PUT https://management.azure.com/subscriptions/")
    assert f"/containerGroups/{NS}-{pod['metadata']['name']}\n" in message
    assert "RESPONSE 409: 409 Conflict\nERROR CODE: ServiceUnavailable\n" in message
    assert_schema_valid(pod)


def test_aci_capacity_and_image_pull_failures_stay_pending(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("no-cap", image="busybox:no-capacity"))
    k8s.batch.create_namespaced_job(NS, job_manifest("no-img", image="docker.io/library/does-not-exist:1"))

    def waiting(name: str) -> str | None:
        pods = job_pods(kube, name)
        statuses = pods[0]["status"].get("containerStatuses") if pods else None
        return statuses[0]["state"].get("waiting", {}).get("reason") if statuses else None

    wait_for(lambda: waiting("no-img") == "ImagePullBackOff", what="ImagePullBackOff")
    wait_for(
        lambda: "capacity" in (job_pods(kube, "no-cap")[0]["status"].get("message") or ""), what="the capacity message"
    )
    assert waiting("no-cap") == "ContainerCreating"
    assert {p["status"]["phase"] for p in job_pods(kube, "no-cap") + job_pods(kube, "no-img")} == {"Pending"}
    pod = job_pods(kube, "no-cap")[0]["metadata"]["name"]
    with pytest.raises(ApiException) as err:
        k8s.core.read_namespaced_pod_log(pod, NS)
    assert err.value.status == 400
    assert (
        json.loads(err.value.body)["message"]
        == f'container "main" in pod "{pod}" is waiting to start: ContainerCreating'
    )


def test_ttl_after_finished_deletes_job_and_pods(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("short-lived", ttlSecondsAfterFinished=5))
    wait_for(lambda: finished(kube, "short-lived"), what="the job to finish")
    wait_for(
        lambda: kube.job(NS, "short-lived") is None and not job_pods(kube, "short-lived"), what="the TTL controller"
    )


# --------------------------------------------------------------------------- logs and patches


def test_log_tail_and_limit_bytes_on_the_system_node(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(
        NS,
        job_manifest(
            "chatty", "echo one; echo two; echo three; echo 'four $NOT_EXPANDED'; echo $MISSING end", virtual=False
        ),
    )
    wait_for(lambda: finished(kube, "chatty"), what="the job to finish")
    pod = job_pods(kube, "chatty")[0]["metadata"]["name"]
    assert k8s.core.read_namespaced_pod_log(pod, NS) == "one\ntwo\nthree\nfour $NOT_EXPANDED\nend\n"
    assert k8s.core.read_namespaced_pod_log(pod, NS, tail_lines=2) == "four $NOT_EXPANDED\nend\n"
    assert k8s.core.read_namespaced_pod_log(pod, NS, limit_bytes=6) == "one\ntw"
    status, text = k8s.raw("GET", f"/api/v1/namespaces/{NS}/pods/{pod}/log", query=[("tailLines", 1)])
    assert (status, text) == (200, "end\n")


def test_patch_labels_and_stale_resource_version_conflict(kube: KubeStandIn, k8s: Clients) -> None:
    created = k8s.batch.create_namespaced_job(NS, job_manifest("patched", labels={"state": "unreported"}))
    wait_for(lambda: finished(kube, "patched"), what="the job to finish")
    patched = k8s.batch.patch_namespaced_job(
        "patched", NS, {"metadata": {"labels": {"state": "reported"}, "annotations": {"x": "1"}}}
    )
    assert patched.metadata.labels["state"] == "reported"
    assert patched.metadata.annotations == {"x": "1"}
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    assert [j.metadata.name for j in k8s.batch.list_namespaced_job(NS, label_selector="state=reported").items] == [
        "patched"
    ]
    assert k8s.batch.list_namespaced_job(NS, label_selector="state=unreported").items == []

    stale = {"metadata": {"resourceVersion": created.metadata.resource_version, "labels": {"state": "x"}}}
    status, body = k8s.raw(
        "PATCH", f"/apis/batch/v1/namespaces/{NS}/jobs/patched", body=stale, content_type="application/merge-patch+json"
    )
    assert (status, body["reason"]) == (409, "Conflict")
    assert (
        body["message"]
        == 'Operation cannot be fulfilled on jobs.batch "patched": the object has been modified; please apply your changes to the latest version and try again'
    )

    ops = [{"op": "add", "path": "/metadata/annotations/y", "value": "2"}]
    status, body = k8s.raw(
        "PATCH", f"/apis/batch/v1/namespaces/{NS}/jobs/patched", body=ops, content_type="application/json-patch+json"
    )
    assert status == 200
    assert body["metadata"]["annotations"] == {"x": "1", "y": "2"}
    status, body = k8s.raw(
        "PATCH",
        f"/apis/batch/v1/namespaces/{NS}/jobs/patched",
        body={"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "other"}]}}}},
        content_type="application/merge-patch+json",
    )
    assert (status, body["reason"]) == (422, "Invalid")


# --------------------------------------------------------------------------- faults, metrics, restart


def test_fail_requests_injects_500_then_recovers(kube: KubeStandIn, k8s: Clients) -> None:
    kube.fail_requests(method="POST", path_regex=r"/jobs$", status=500, count=2)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            k8s.batch.create_namespaced_job(NS, job_manifest("retry-me"))
        assert err.value.status == 500
        assert json.loads(err.value.body)["reason"] == "InternalError"
    assert kube.job(NS, "retry-me") is None
    k8s.batch.create_namespaced_job(NS, job_manifest("retry-me"))
    assert kube.request_counts()[("POST", "/apis/batch/v1/namespaces/{ns}/jobs")] == 3
    assert [r[0] for r in kube.request_log] == ["POST"] * 3

    # the answer is lost after the create happened: the retry meets AlreadyExists
    kube.fail_requests(method="POST", status=503, count=1, after=True)
    with pytest.raises(ApiException) as err:
        k8s.batch.create_namespaced_job(NS, job_manifest("lost-answer"))
    assert err.value.status == 503
    assert kube.job(NS, "lost-answer") is not None
    kube.clear_faults()
    kube.reset_metrics()
    assert kube.request_log == []
    assert not kube.request_counts()


def test_fault_rates_drop_and_error_are_seeded(kube: KubeStandIn, k8s: Clients) -> None:
    kube.set_fault_rates(drop_rate=1.0, path_regex=r"/nodes$")
    with pytest.raises(urllib3.exceptions.HTTPError):
        k8s.core.list_node()
    assert k8s.core.list_namespace().items  # other paths unaffected
    kube.set_fault_rates(error_rate=0.5, error_status=429, seed=7)
    outcomes = []
    for _ in range(20):
        try:
            k8s.core.list_namespace()
            outcomes.append(200)
        except ApiException as e:
            outcomes.append(e.status)
            assert e.headers["Retry-After"] == "1"
    kube.set_fault_rates(error_rate=0.5, error_status=429, seed=7)
    again = []
    for _ in range(20):
        try:
            k8s.core.list_namespace()
            again.append(200)
        except ApiException as e:
            again.append(e.status)
    assert outcomes == again
    assert set(outcomes) == {200, 429}


def test_restart_keeps_state_and_port(kube: KubeStandIn, k8s: Clients) -> None:
    k8s.batch.create_namespaced_job(NS, job_manifest("survivor"))
    url = kube.url
    kube.restart(downtime_seconds=0.1)
    assert kube.url == url
    job = k8s.batch.read_namespaced_job("survivor", NS)  # the same client reconnects
    assert job.metadata.name == "survivor"
    wait_for(lambda: finished(kube, "survivor"), what="the job to finish after the restart")


def test_server_survives_clients_that_hang_up(kube: KubeStandIn, k8s: Clients) -> None:
    ctx = ssl.create_default_context(cadata=kube.ca_pem.decode())
    for payload in (
        b"POST /apis/batch/v1/namespaces/vnode-batch/jobs HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
        b"GARBAGE\r\n\r\n",
        b"",
    ):
        with (
            socket.create_connection(("127.0.0.1", kube.port)) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(payload)
    with socket.create_connection(("127.0.0.1", kube.port)):
        pass  # TCP only, no TLS handshake
    results: list[int] = []

    def lister() -> None:
        for _ in range(10):
            results.append(len(k8s.core.list_node().items))

    threads = [threading.Thread(target=lister) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [2] * 40


def test_virtual_node_logs_carry_timestamps_and_ignore_limit_bytes(kube: KubeStandIn, k8s: Clients) -> None:
    # azure-aci ListLogs: Timestamps always true, tail passed on, limitBytes never read.
    k8s.batch.create_namespaced_job(NS, job_manifest("chatty-aci", "echo one; echo two; echo three"))
    wait_for(lambda: finished(kube, "chatty-aci"), what="the job to finish")
    pod = job_pods(kube, "chatty-aci")[0]["metadata"]["name"]
    assert aci_text(k8s.core.read_namespaced_pod_log(pod, NS)) == "one\ntwo\nthree\n"
    assert aci_text(k8s.core.read_namespaced_pod_log(pod, NS, tail_lines=2)) == "two\nthree\n"
    assert aci_text(k8s.core.read_namespaced_pod_log(pod, NS, limit_bytes=6)) == "one\ntwo\nthree\n"
