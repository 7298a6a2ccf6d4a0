"""The virtual node as the real one behaves (virtual-kubelet + azure-aci + ACI), over real HTTPS.

For each rule a Job that breaks it ends with its pod ``Failed``/``ProviderFailed`` and ACI's error
in ``status.message``, as ``kubectl describe pod`` shows on AKS; quotas and rates refuse with ACI's
codes and free on delete; the exit-code switch, log truncation and env expansion are observable
through the API. Sources are cited in ``devtools/standins/virtual_node``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.standins.kube.apiserver import KubeStandIn
from devtools.standins.virtual_node.provider import AciSettings
from devtools.standins.virtual_node.quotas import QuotaSettings
from tests.conftest import wait_for
from tests.standins.test_kube_standin import NS, Clients, aci_text, finished, job_manifest, job_pods


def start(aci: AciSettings | None = None, time_scale: float = 0.01) -> KubeStandIn:
    # time_scale 0.01: ACI's 25 s start is 0.25 s of wall time
    return KubeStandIn(time_scale=time_scale, tick_seconds=0.01, aci=aci).start()


@pytest.fixture
def kube() -> Iterator[KubeStandIn]:
    server = start()
    yield server
    server.stop()
    assert server.controller_errors == []


@pytest.fixture
def k8s(kube: KubeStandIn) -> Clients:
    return Clients(kube)


def main(job: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


def run(kube: KubeStandIn, k8s: Clients, job: dict[str, Any]) -> dict[str, Any]:
    """Create the Job (no retries) and return its first pod once the Job has finished."""
    job["spec"].setdefault("backoffLimit", 0)
    name = job["metadata"]["name"]
    k8s.batch.create_namespaced_job(NS, job)
    wait_for(lambda: finished(kube, name), what=f"job {name} to finish")
    return job_pods(kube, name)[0]


def provider_failed(pod: dict[str, Any]) -> str:
    """The ACI error of a refused pod (asserts the pod is Failed/ProviderFailed)."""
    status = pod["status"]
    assert (status["phase"], status.get("reason")) == ("Failed", "ProviderFailed"), status
    message: str = status["message"]
    return message


def arm_error(message: str) -> tuple[str, dict[str, str]]:
    """(the ``RESPONSE …`` line, the ``error`` object) out of azcore's error text."""
    lines = message.split("\n")
    body = message[message.index("{") : message.rindex("}") + 1]
    return lines[2], json.loads(body)["error"]


# --------------------------------------------------------------------------- names


def test_container_group_name_over_63_characters_is_refused(kube: KubeStandIn, k8s: Clients) -> None:
    name = "nightly-ledger-export-2026-0031-" + "x" * 15  # 47: vnode-batch-<47>-<5> = 65
    pod = run(kube, k8s, job_manifest(name))
    response, error = arm_error(provider_failed(pod))
    assert response == "RESPONSE 400: 400 Bad Request"
    assert error["code"] == "InvalidContainerGroupName"
    assert f"'{NS}-{pod['metadata']['name']}'" in error["message"]
    counters = kube.aci_counters()
    assert (counters["creates_accepted"], counters["creates_refused"]) == (0, {"InvalidContainerGroupName": 1})


def test_consecutive_hyphens_are_refused(kube: KubeStandIn, k8s: Clients) -> None:
    pod = run(kube, k8s, job_manifest("report--daily"))
    assert arm_error(provider_failed(pod))[1]["code"] == "InvalidContainerGroupName"


def test_a_name_that_fits_runs(kube: KubeStandIn, k8s: Clients) -> None:
    name = "x" * (63 - len(NS) - 1 - 6)  # the longest plain Job name for this namespace
    pod = run(kube, k8s, job_manifest(name))
    assert pod["status"]["phase"] == "Succeeded"


# --------------------------------------------------------------------------- resources


def with_resources(name: str, requests: dict[str, str], limits: dict[str, str] | None = None) -> dict[str, Any]:
    job = job_manifest(name)
    main(job)["resources"] = {"requests": requests, "limits": limits if limits is not None else dict(requests)}
    return job


def test_cpu_not_a_multiple_of_10m_arrives_as_limit_above_request(kube: KubeStandIn, k8s: Clients) -> None:
    pod = run(kube, k8s, with_resources("cpu-125m", {"cpu": "125m", "memory": "1Gi"}))
    response, error = arm_error(provider_failed(pod))
    assert response == "RESPONSE 400: 400 Bad Request"
    assert error == {
        "code": "ContainerLimitGreaterThanContainerGroupTotalRequest",
        "message": f"The 'Cpu' limit '0.125' in container 'main' is greater than the total request '0.12' "
        f"of container group '{NS}-{pod['metadata']['name']}'.",
    }


def test_limit_below_request_is_refused(kube: KubeStandIn, k8s: Clients) -> None:
    pod = run(kube, k8s, with_resources("low-limit", {"cpu": "2", "memory": "4G"}, {"cpu": "1", "memory": "4G"}))
    error = arm_error(provider_failed(pod))[1]
    assert error["code"] == "ResourceLimitsLessThanRequests"
    assert "The 'Cpu' limit value must be greater than or equal to the request value." in error["message"]
    assert '{"requests":{"memoryInGB":4.0,"cpu":2.0},"limits":{"memoryInGB":4.0,"cpu":1.0}}' in error["message"]


def test_16gi_is_over_the_16_gb_group_size(kube: KubeStandIn, k8s: Clients) -> None:
    pod = run(kube, k8s, with_resources("big-mem", {"cpu": "1", "memory": "16Gi"}))
    response, error = arm_error(provider_failed(pod))
    assert response == "RESPONSE 409: 409 Conflict"
    assert error["code"] == "ServiceUnavailable"
    assert "Resource requested: '1' CPU '17.1' GB memory 'Linux' OS" in error["message"]


def test_larger_groups_run_when_the_stand_in_allows_them() -> None:
    kube = start(AciSettings(max_cpu=8, max_memory_gb=32))
    try:
        pod = run(kube, Clients(kube), with_resources("big-ok", {"cpu": "8", "memory": "16Gi"}))
        assert pod["status"]["phase"] == "Succeeded"
    finally:
        kube.stop()


def test_other_resource_names_are_dropped(kube: KubeStandIn, k8s: Clients) -> None:
    pod = run(kube, k8s, with_resources("ephemeral", {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "50Gi"}))
    assert pod["status"]["phase"] == "Succeeded"


# --------------------------------------------------------------------------- env and command


def test_env_values_are_expanded_and_command_is_not(kube: KubeStandIn, k8s: Clients) -> None:
    job = job_manifest("env-expand", None)
    main(job)["command"] = ["sh", "-c", 'echo "$DB_PASSWORD"; echo "$GREETING"; echo "$(GREETING)"']
    main(job)["env"] = [
        {"name": "DB_PASSWORD", "value": "s3cr$$t"},
        {"name": "WHO", "value": "world"},
        {"name": "GREETING", "value": "hello $(WHO) from $(UNDEFINED)"},
    ]
    pod = run(kube, k8s, job)
    assert pod["status"]["phase"] == "Succeeded"
    log = aci_text(k8s.core.read_namespaced_pod_log(pod["metadata"]["name"], NS))
    # env: $$ → $, $(WHO) expanded, undefined $(UNDEFINED) kept; command: passed as written
    assert log == "s3cr$t\nhello world from $(UNDEFINED)\n$(GREETING)\n"


def test_empty_env_values_are_dropped(kube: KubeStandIn, k8s: Clients) -> None:
    job = job_manifest("env-empty", "printenv EMPTY")
    main(job)["env"] = [{"name": "EMPTY", "value": ""}]
    assert run(kube, k8s, job)["status"]["phase"] == "Failed"  # printenv: not set
    job = job_manifest("env-set", "printenv SET")
    main(job)["env"] = [{"name": "SET", "value": "1"}]
    assert run(kube, k8s, job)["status"]["phase"] == "Succeeded"


def test_env_names_aci_refuses(kube: KubeStandIn, k8s: Clients) -> None:
    job = job_manifest("env-name")
    main(job)["env"] = [{"name": "MY-VAR", "value": "x"}]
    error = arm_error(provider_failed(run(kube, k8s, job)))[1]
    assert error["code"] == "InvalidContainerEnvironmentVariable"
    assert "of container group 'vnode-batch-env-name-" in error["message"]


# --------------------------------------------------------------------------- pod features


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("args", ["--verbose"], "ACI does not support providing args without specifying the command."),
        ("lifecycle", {"preStop": {"exec": {"command": ["true"]}}}, "ACI does not support lifecycle hooks"),
        ("startupProbe", {"exec": {"command": ["true"]}}, "ACI does not support startupProbe"),
    ],
)
def test_container_features_azure_aci_refuses(
    kube: KubeStandIn, k8s: Clients, field: str, value: Any, message: str
) -> None:
    job = job_manifest(f"feature-{field.lower()}", None if field == "args" else "echo hi")
    main(job)[field] = value
    assert provider_failed(run(kube, k8s, job)).startswith(message)  # plain text: no ARM call was made


def test_gpu_and_a_missing_pull_secret_are_refused_by_the_provider(kube: KubeStandIn, k8s: Clients) -> None:
    gpu = job_manifest("gpu")
    main(gpu)["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    assert provider_failed(run(kube, k8s, gpu)) == (
        "the pod requires GPU resource, but ACI doesn't provide GPU enabled container group in region westus"
    )
    private = job_manifest("private")
    private["spec"]["template"]["spec"]["imagePullSecrets"] = [{"name": "acr"}]
    assert provider_failed(run(kube, k8s, private)) == 'secret "acr" not found'  # the lister's NotFound


def test_missing_secret_in_env_keeps_the_pod_pending(kube: KubeStandIn, k8s: Clients) -> None:
    job = job_manifest("needs-secret")
    main(job)["env"] = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "token"}}}]
    k8s.batch.create_namespaced_job(NS, job)
    run(kube, k8s, job_manifest("after-it"))  # the controller has moved on past the first pod
    [pod] = job_pods(kube, "needs-secret")
    # virtual-kubelet's env resolution fails before CreatePod: retried, never ProviderFailed
    assert (pod["status"]["phase"], pod["status"].get("reason")) == ("Pending", None)
    assert kube.aci_counters()["creates_accepted"] == 1  # only after-it got a container group


def test_unsupported_volume_is_refused(kube: KubeStandIn, k8s: Clients) -> None:
    job = job_manifest("hostpath")
    job["spec"]["template"]["spec"]["volumes"] = [{"name": "host", "hostPath": {"path": "/var"}}]
    pod = run(kube, k8s, job)
    assert provider_failed(pod) == f"pod {pod['metadata']['name']} requires volume host which is of an unsupported type"


def test_dropped_features_run_without_effect(kube: KubeStandIn, k8s: Clients) -> None:
    job = job_manifest("dropped")
    main(job)["securityContext"] = {"runAsUser": 1000}
    main(job)["workingDir"] = "/data"
    job["spec"]["template"]["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    assert run(kube, k8s, job)["status"]["phase"] == "Succeeded"


def test_refused_pod_with_restart_on_failure_stays_pending(kube: KubeStandIn, k8s: Clients) -> None:
    job = job_manifest("on-failure--x")
    job["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    k8s.batch.create_namespaced_job(NS, job)

    def refused() -> dict[str, Any] | None:
        pods = job_pods(kube, "on-failure--x")
        return pods[0] if pods and pods[0]["status"].get("reason") == "ProviderFailed" else None

    pod = wait_for(refused, what="the provider error")
    assert pod["status"]["phase"] == "Pending"  # virtual-kubelet handleProviderError


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(("reports", "code", "reason"), [(False, 0, "Completed"), (True, 3, "Failed")])
def test_exit_code_switch(reports: bool, code: int, reason: str) -> None:
    kube = start(AciSettings(reports_exit_codes=reports))
    try:
        pod = run(kube, Clients(kube), job_manifest("exit-3", "echo bye; exit 3"))
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert pod["status"]["phase"] == "Failed"
        assert (terminated["exitCode"], terminated["reason"]) == (code, reason)
        assert pod["status"]["conditions"] == []  # containergroup_to_pod.go: none for a Failed group
    finally:
        kube.stop()


# --------------------------------------------------------------------------- logs


def test_logs_after_stop_keep_the_last_1000_lines(kube: KubeStandIn, k8s: Clients) -> None:
    script = "; ".join(f"echo line-{i:04d}" for i in range(1200))
    pod = run(kube, k8s, job_manifest("many-lines", script))
    lines = aci_text(k8s.core.read_namespaced_pod_log(pod["metadata"]["name"], NS)).splitlines()
    assert (len(lines), lines[0], lines[-1]) == (1000, "line-0200", "line-1199")


def test_logs_after_stop_keep_the_last_16_kb(kube: KubeStandIn, k8s: Clients) -> None:
    script = "; ".join(f"echo {i:04d}-{'x' * 95}" for i in range(300))  # 300 lines of 101 bytes
    pod = run(kube, k8s, job_manifest("big-lines", script))
    text = aci_text(k8s.core.read_namespaced_pod_log(pod["metadata"]["name"], NS))
    assert len(text.encode()) <= 16 * 1024
    assert text.splitlines()[-1].startswith("0299-")
    assert len(text.splitlines()) == 16 * 1024 // 101


# --------------------------------------------------------------------------- quotas, rates, faults


def refused_code(kube: KubeStandIn, name: str) -> str:
    def pod() -> dict[str, Any] | None:
        pods = job_pods(kube, name)
        return pods[0] if pods and pods[0]["status"].get("reason") == "ProviderFailed" else None

    return arm_error(wait_for(pod, what=f"{name} to be refused")["status"]["message"])[1]["code"]


def running(kube: KubeStandIn, name: str) -> bool:
    pods = job_pods(kube, name)
    return bool(pods) and pods[0]["status"]["phase"] == "Running"


def test_container_group_quota_refuses_then_frees_on_delete() -> None:
    kube = start(AciSettings(quotas=QuotaSettings(container_groups=2)))
    k8s = Clients(kube)
    try:
        for name in ("q-1", "q-2"):
            k8s.batch.create_namespaced_job(NS, job_manifest(name, "sleep 100000", backoffLimit=0))
            wait_for(lambda name=name: running(kube, name), what=f"{name} to run")
        k8s.batch.create_namespaced_job(NS, job_manifest("q-3", "sleep 100000", backoffLimit=0))
        assert refused_code(kube, "q-3") == "ContainerGroupQuotaReached"
        message = job_pods(kube, "q-3")[0]["status"]["message"]
        assert "container group quota 'ContainerGroups' exceeded in region 'westus'. Limit: '2', Usage: '2'" in message
        k8s.batch.delete_namespaced_job("q-1", NS, propagation_policy="Background")
        wait_for(lambda: not job_pods(kube, "q-1"), what="q-1's pod to go")
        k8s.batch.create_namespaced_job(NS, job_manifest("q-4", "sleep 100000", backoffLimit=0))
        wait_for(lambda: running(kube, "q-4"), what="q-4 to run in the freed slot")
        counters = kube.aci_counters()
        assert (counters["peak_groups"], counters["groups_in_use"]) == (2, 2)
        assert counters["creates_refused"] == {"ContainerGroupQuotaReached": 1}
    finally:
        kube.stop()


def test_standard_cores_quota() -> None:
    kube = start(AciSettings(quotas=QuotaSettings(standard_cores=3)))
    k8s = Clients(kube)
    try:
        for name in ("c-1", "c-2"):
            job = with_resources(name, {"cpu": "2", "memory": "1G"})
            job["spec"]["backoffLimit"] = 0
            k8s.batch.create_namespaced_job(NS, job)
        wait_for(lambda: finished(kube, "c-1") and finished(kube, "c-2"), what="both jobs")
        phases = sorted(job_pods(kube, n)[0]["status"].get("reason", "ok") for n in ("c-1", "c-2"))
        assert phases == ["ProviderFailed", "ok"]
        assert kube.aci_counters()["creates_refused"] == {"ContainerGroupQuotaReached": 1}
        assert kube.aci_counters()["peak_cores"] == 2
    finally:
        kube.stop()


def test_create_rate_per_5_minutes_is_throttled() -> None:
    kube = start(AciSettings(quotas=QuotaSettings(creates_per_5_minutes=2)), time_scale=0.1)
    k8s = Clients(kube)
    try:
        for name in ("r-1", "r-2", "r-3"):
            k8s.batch.create_namespaced_job(NS, job_manifest(name, backoffLimit=0))
            wait_for(lambda name=name: job_pods(kube, name), what=f"{name}'s pod")
        assert refused_code(kube, "r-3") == "TooManyRequests"
        assert "RESPONSE 429: 429 Too Many Requests" in job_pods(kube, "r-3")[0]["status"]["message"]
    finally:
        kube.stop()


@pytest.mark.parametrize(("code", "status"), [("ServiceUnavailable", 409), ("TooManyRequests", 429)])
def test_injected_faults(kube: KubeStandIn, k8s: Clients, code: str, status: int) -> None:
    kube.aci_inject(code, times=1)
    k8s.batch.create_namespaced_job(NS, job_manifest("faulty", backoffLimit=1))
    job = wait_for(lambda: finished(kube, "faulty"), what="the job to finish")
    assert (job["status"]["failed"], job["status"]["succeeded"]) == (1, 1)  # the retry got capacity
    refused = next(p for p in job_pods(kube, "faulty") if p["status"].get("reason") == "ProviderFailed")
    assert arm_error(refused["status"]["message"])[0].startswith(f"RESPONSE {status}: ")
    assert kube.aci_counters()["creates_refused"] == {code: 1}


def test_indexed_pod_names_keep_the_index_and_long_ones_are_refused(kube: KubeStandIn, k8s: Clients) -> None:
    name = "y" * 60
    job = job_manifest(name, completions=1, completionMode="Indexed", backoffLimitPerIndex=0)
    k8s.batch.create_namespaced_job(NS, job)
    wait_for(lambda: finished(kube, name), what="the indexed job to finish")
    [pod] = job_pods(kube, name)
    assert pod["metadata"]["name"][:58] == "y" * 55 + "-0-"  # podGenerateNameWithIndex cuts the job part
    assert arm_error(provider_failed(pod))[1]["code"] == "InvalidContainerGroupName"


def test_a_group_being_created_shows_only_pod_scheduled() -> None:
    kube = start(AciSettings(start_seconds=10**6))  # ACI never finishes creating it here
    try:
        Clients(kube).batch.create_namespaced_job(NS, job_manifest("creating"))
        pod = wait_for(lambda: (job_pods(kube, "creating") or [None])[0], what="the pod")
        wait_for(lambda: kube.aci_counters()["creates_accepted"] == 1, what="the container group")
        [pod] = job_pods(kube, "creating")
        assert pod["spec"]["nodeName"] == "virtual-node-aci-linux"
        assert pod["status"]["phase"] == "Pending"
        assert [c["type"] for c in pod["status"]["conditions"]] == ["PodScheduled"]
        assert "containerStatuses" not in pod["status"]
        assert "hostIP" not in pod["status"]
    finally:
        kube.stop()
