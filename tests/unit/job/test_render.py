"""The Job manifest: what the virtual node needs, and schema-valid for Kubernetes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.base.conventions import ANN_RESOURCES, LABEL_STATE, STATE_UNREPORTED
from shared.base.quantity import parse_cpu, parse_memory
from shared.config.settings import Settings
from shared.intake.request import parse_request
from shared.job.render import NODE_SELECTOR, TOLERATIONS, JobMeta, build_job, job_name, job_name_within, resources_for

K8S = "1.33"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
META = JobMeta(key="order-42", message_id="m-1", enqueued_at=datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC))


def render(settings: Settings, **fields: Any) -> dict[str, Any]:
    body = {"image": "mcr.microsoft.com/azurelinux/base/core:3.0", "command": ["sh", "-c", "true"], **fields}
    return build_job(parse_request(body, settings=settings), META, settings=settings)


def validate(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S, strict=True)


def test_job_targets_the_virtual_node(settings: Settings) -> None:
    job = render(settings)
    pod = job["spec"]["template"]["spec"]
    assert (
        pod["nodeSelector"]
        == NODE_SELECTOR
        == {
            "kubernetes.io/role": "agent",
            "kubernetes.io/os": "linux",
            "type": "virtual-kubelet",
        }
    )
    assert {"key": "virtual-kubelet.io/provider", "operator": "Exists"} in pod["tolerations"]
    assert {"key": "azure.com/aci", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["tolerations"] == TOLERATIONS
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    validate(job)


def container(job: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return result


def test_requests_equal_limits_with_defaults_from_settings(settings: Settings) -> None:
    res = container(render(settings))["resources"]
    assert res["requests"] == res["limits"] == {"cpu": "1", "memory": "1500M"}
    res = container(render(settings, cpu="250m", memory="2G"))["resources"]
    assert res["requests"] == res["limits"] == {"cpu": "250m", "memory": "2G"}


@pytest.mark.parametrize(
    ("cpu", "memory", "applied"),
    [
        ("125m", "512Mi", {"cpu": "130m", "memory": "600M"}),  # the issue's 125m; 512Mi = 0.537 GB
        (0.333, "1.5Gi", {"cpu": "340m", "memory": "1700M"}),  # 1.5Gi = 1.61 GB
        ("1", "1G", {"cpu": "1", "memory": "1G"}),  # already on ACI's steps: unchanged
        ("3.995", "15.95G", {"cpu": "4", "memory": "16G"}),
    ],
)
def test_cpu_and_memory_are_rounded_up_to_what_aci_receives_unchanged(
    settings: Settings, cpu: object, memory: str, applied: dict[str, str]
) -> None:
    job = render(settings, cpu=cpu, memory=memory)
    res = container(job)["resources"]
    assert res["requests"] == res["limits"] == applied
    # azure-aci getContainers: request floored to 0.01 vCPU and 0.1 GB, limit CPU exact, limit memory floored.
    millis = int(parse_cpu(applied["cpu"]) * 1000)
    assert millis // 10 / 100 == millis / 1000
    size = parse_memory(applied["memory"])
    assert size // 100_000_000 / 10 * 1e9 >= parse_memory(memory)
    recorded = json.loads(job["metadata"]["annotations"][ANN_RESOURCES])
    assert recorded["cpu"]["applied"] == applied["cpu"]
    assert recorded["memory"] == {
        "requested": parse_request({"image": "mcr.microsoft.com/a:1", "memory": memory}, settings=settings).memory,
        "applied": applied["memory"],
    }


def test_requested_cpu_125m_is_applied_as_130m_and_says_so(settings: Settings) -> None:
    request = parse_request({"image": "mcr.microsoft.com/a:1", "cpu": "125m"}, settings=settings)
    applied = resources_for(request, settings)
    assert (applied.cpu_requested, applied.cpu) == ("125m", "130m")
    assert applied.as_dict()["cpu"] == {"requested": "125m", "applied": "130m"}
    assert applied.describe() == [
        "cpu: 130m (requested 125m; ACI takes vCPU in steps of 10m, rounded up)",
        "memory: 1500M (the default, VNB_DEFAULT_MEMORY, on ACI's step)",
    ]
    assert resources_for(parse_request({"image": "mcr.microsoft.com/a:1"}, settings=settings), settings).as_dict() == {
        "cpu": {"requested": None, "applied": "1"},
        "memory": {"requested": None, "applied": "1500M"},
    }


def test_env_values_reach_the_container_literally(settings: Settings) -> None:
    job = render(settings, env={"DB_PASSWORD": "s3cr$$t", "REF": "$(HOME)/x", "PLAIN": "a b"}, correlationId="c$1")
    env = {e["name"]: e["value"] for e in container(job)["env"]}
    # virtual-kubelet expands env values like the kubelet: $$ → $, $(NAME) → its value.
    assert env["DB_PASSWORD"] == "s3cr$$$$t"
    assert expand(env["DB_PASSWORD"], env) == "s3cr$$t"
    assert expand(env["REF"], {**env, "HOME": "/root"}) == "$(HOME)/x"
    assert expand(env["PLAIN"], env) == "a b"
    assert expand(env["VNB_CORRELATION_ID"], env) == "c$1"


def expand(value: str, env: dict[str, str]) -> str:
    """virtual-kubelet internal/expansion Expand (the kubelet's rules), for the test only:
    ``$$`` is an escaped ``$``, ``$(NAME)`` is NAME's value if defined, anything else is literal."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = value.find(")", i + 2)
                if end != -1:
                    name = value[i + 2 : end]
                    out.append(env.get(name, value[i : end + 1]))
                    i = end + 1
                    continue
        out.append(value[i])
        i += 1
    return "".join(out)


def test_single_job_fields(settings: Settings) -> None:
    job = render(settings, retries=2, timeoutSeconds=600, correlationId="c-9", labels={"team": "data"})
    spec = job["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 600
    assert spec["ttlSecondsAfterFinished"] == settings.job_ttl_seconds
    assert "completionMode" not in spec
    meta = job["metadata"]
    assert meta["name"] == job_name("order-42", settings=settings)
    assert meta["namespace"] == settings.namespace
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "vnode-batch"
    assert meta["labels"][LABEL_STATE] == STATE_UNREPORTED
    assert meta["labels"]["team"] == "data"
    ann = meta["annotations"]
    assert ann["vnode-batch.io/key"] == "order-42"
    assert ann["vnode-batch.io/message-id"] == "m-1"
    assert ann["vnode-batch.io/correlation-id"] == "c-9"
    assert ann["vnode-batch.io/enqueued-at"] == "2026-11-27T01:02:03Z"
    assert len(ann["vnode-batch.io/request-hash"]) == 32
    env = {e["name"]: e["value"] for e in spec["template"]["spec"]["containers"][0]["env"]}
    assert env["VNB_REQUEST_KEY"] == "order-42"
    assert env["VNB_CORRELATION_ID"] == "c-9"
    validate(job)


def test_array_request_becomes_indexed_job_with_per_index_retries(settings: Settings) -> None:
    job = render(settings, completions=5, parallelism=2, retries=1)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 5
    assert spec["parallelism"] == 2
    assert spec["backoffLimitPerIndex"] == 1
    assert "backoffLimit" not in spec
    validate(job)


def test_parallelism_defaults_to_completions_capped(make_settings: Any) -> None:
    s = make_settings(VNB_MAX_PARALLELISM="3")
    assert render(s, completions=10)["spec"]["parallelism"] == 3


CONTAINER_GROUP = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,62}$")
"""ACI container-group names: 1-63 lowercase letters, digits, single hyphens, no hyphen at either end."""


def pod_names(job: str, namespace: str, *, index: int | None) -> tuple[str, str]:
    """The longest pod name the Job controller can give (generateName cut to 58 + 5 random
    characters) and the ACI container group azure-aci makes of it."""
    base = (f"{job}-{index}-" if index is not None else f"{job}-")[:58]
    pod = base + "zzzzz"
    return pod, f"{namespace}-{pod}"


def test_the_issues_long_id_gives_valid_container_group_names(settings: Settings) -> None:
    key = "nightly-ledger-export-2026-0031"
    name = job_name(key, settings=settings)
    assert len(name) <= settings.job_name_budget == 42  # 45 - len('-99')
    assert name.startswith("vnb-nightly-ledger-export-")
    for index in (None, 0, settings.max_completions - 1):
        _pod, group = pod_names(name, settings.namespace, index=index)
        assert CONTAINER_GROUP.match(group), group
        assert len(group) <= 63


@pytest.mark.parametrize(
    "key",
    [
        "order-42",
        "A_1",
        "a-1",
        "x" * 128,
        "nightly-20261127T000000Z",
        "UPPER.case:with@odd+chars",
        "9",
        "a--b",
        "a-.-b",
    ],
)
def test_job_name_is_a_stable_dns_label_without_double_hyphens(key: str, settings: Settings) -> None:
    name = job_name(key, settings=settings)
    assert name == job_name(key, settings=settings)
    assert len(name) <= settings.job_name_budget
    assert DNS_LABEL.match(name)
    assert "--" not in name


def test_keys_that_slugify_or_cut_alike_get_different_names(settings: Settings) -> None:
    assert job_name("A_1", settings=settings) != job_name("a-1", settings=settings)
    assert job_name("a--b", settings=settings) != job_name("a-b", settings=settings)
    assert job_name("x" * 100 + "1", settings=settings) != job_name("x" * 100 + "2", settings=settings)


def test_the_budget_follows_the_namespace_and_max_completions(make_settings: Any) -> None:
    assert make_settings(VNB_MAX_COMPLETIONS="1").job_name_budget == 63 - 11 - 1 - 6
    assert make_settings(VNB_MAX_COMPLETIONS="100").job_name_budget == 63 - 11 - 1 - 6 - 3
    assert make_settings(VNB_MAX_COMPLETIONS="101", VNB_NAMESPACE="b").job_name_budget == 63 - 1 - 1 - 6 - 4
    long_ns = make_settings(VNB_NAMESPACE="n" * 39)
    name = job_name("nightly-ledger-export-2026-0031", settings=long_ns)
    assert name == "vnb-" + name[-10:]
    assert len(name) == 14 == long_ns.job_name_budget


@given(st.text(min_size=1, max_size=128), st.integers(min_value=14, max_value=80))
def test_any_key_gives_a_valid_name_within_any_budget(key: str, budget: int) -> None:
    name = job_name_within(key, budget)
    assert len(name) <= min(budget, 63)
    assert DNS_LABEL.match(name)
    assert "--" not in name
