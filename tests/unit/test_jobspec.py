"""The Job manifest: what the virtual node needs, and schema-valid for Kubernetes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.jobspec import (
    LABEL_STATE,
    MAX_JOB_NAME,
    NODE_SELECTOR,
    STATE_UNREPORTED,
    TOLERATIONS,
    JobMeta,
    build_job,
    job_name,
)
from shared.request import parse_request
from shared.settings import Settings

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


def test_requests_equal_limits_with_defaults_from_settings(settings: Settings) -> None:
    res = render(settings)["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["requests"] == res["limits"] == {"cpu": "1", "memory": "1536Mi"}
    res = render(settings, cpu="250m", memory="2Gi")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["requests"] == res["limits"] == {"cpu": "250m", "memory": "2048Mi"}


def test_single_job_fields(settings: Settings) -> None:
    job = render(settings, retries=2, timeoutSeconds=600, correlationId="c-9", labels={"team": "data"})
    spec = job["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 600
    assert spec["ttlSecondsAfterFinished"] == settings.job_ttl_seconds
    assert "completionMode" not in spec
    meta = job["metadata"]
    assert meta["name"] == job_name("order-42")
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


@pytest.mark.parametrize(
    "key",
    ["order-42", "A_1", "a-1", "x" * 128, "nightly-20261127T000000Z", "UPPER.case:with@odd+chars", "9"],
)
def test_job_name_is_a_short_stable_dns_label(key: str) -> None:
    name = job_name(key)
    assert name == job_name(key)
    assert len(name) <= MAX_JOB_NAME <= 63
    assert DNS_LABEL.match(name)


def test_keys_that_slugify_alike_get_different_names() -> None:
    assert job_name("A_1") != job_name("a-1")


@given(st.text(min_size=1, max_size=128))
def test_any_key_gives_a_valid_name(key: str) -> None:
    name = job_name(key)
    assert len(name) <= MAX_JOB_NAME
    assert DNS_LABEL.match(name)
