"""Property tests over the request schema and the Job builder (bad-input fuzzing).

Any accepted request renders a manifest Kubernetes accepts and the virtual node would
schedule; any rejected input yields at least one field error; nothing else is ever raised.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.config.settings import Settings
from shared.intake.decode import decode_body
from shared.intake.request import RequestInvalid, parse_request
from shared.job.render import JobMeta, build_job
from tests.conftest import make_env

SETTINGS = Settings.from_env(make_env())
VIRTUAL_NODE_LABELS = {
    "kubernetes.io/role": "agent",
    "kubernetes.io/os": "linux",
    "beta.kubernetes.io/os": "linux",
    "type": "virtual-kubelet",
    "kubernetes.io/hostname": "virtual-node-aci-linux",
}
VIRTUAL_NODE_TAINTS = [{"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}]


def schedulable_on_virtual_node(pod: dict[str, Any]) -> bool:
    """The scheduler's two predicates that matter here: nodeSelector and taints."""
    if any(VIRTUAL_NODE_LABELS.get(k) != v for k, v in (pod.get("nodeSelector") or {}).items()):
        return False
    for taint in VIRTUAL_NODE_TAINTS:
        tolerated = any(
            t.get("key") in (None, taint["key"])
            and t.get("effect") in (None, "", taint["effect"])
            and (t.get("operator") == "Exists" or t.get("value") == taint["value"])
            for t in pod.get("tolerations") or []
        )
        if not tolerated:
            return False
    return True


label_text = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
quantities_cpu = st.one_of(
    st.sampled_from(["100m", "250m", "0.5", "1", "2", "4", "5", "0", "-1", "abc", "1e3", "3.999"]),
    st.floats(min_value=-2, max_value=40),
    st.just(float("nan")),
    st.just(float("inf")),
    st.integers(min_value=-5, max_value=64),
)
quantities_mem = st.sampled_from(["128Mi", "512Mi", "1Gi", "1.5Gi", "16Gi", "17Gi", "64Mi", "2G", "lots", "-1Gi", "0"])
requests = st.fixed_dictionaries(
    {"image": st.sampled_from(["mcr.microsoft.com/azurelinux/base/core:3.0", "busybox", "evil.io/x", "BAD REF"])},
    optional={
        "id": st.one_of(label_text, st.text(max_size=140)),
        "command": st.lists(st.text(max_size=30), max_size=4),
        "args": st.lists(st.text(max_size=30), max_size=4),
        "env": st.dictionaries(
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True) | st.text(max_size=8),
            st.text(max_size=40),
            max_size=5,
        ),
        "cpu": quantities_cpu,
        "memory": quantities_mem,
        "completions": st.integers(min_value=-2, max_value=150),
        "parallelism": st.integers(min_value=-2, max_value=30),
        "timeoutSeconds": st.integers(min_value=-1, max_value=200_000),
        "retries": st.integers(min_value=-1, max_value=12),
        "labels": st.dictionaries(
            st.one_of(label_text, st.text(max_size=10)), st.one_of(label_text, st.text(max_size=10)), max_size=3
        ),
        "correlationId": st.text(max_size=40),
        "extra": st.integers(),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_accepted_requests_render_valid_schedulable_jobs(body: dict[str, Any]) -> None:
    try:
        request = parse_request(body, settings=SETTINGS)
    except RequestInvalid as e:
        assert e.errors
        assert all(err.field and err.message for err in e.errors)
        return
    meta = JobMeta(key=request.id or "msg-1", message_id="msg-1", enqueued_at=datetime(2026, 1, 1, tzinfo=UTC))
    manifest = build_job(request, meta, settings=SETTINGS)
    kubernetes_validate.validate(manifest, "1.33", strict=True)
    pod = manifest["spec"]["template"]["spec"]
    assert schedulable_on_virtual_node(pod)
    container = pod["containers"][0]
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert len(manifest["metadata"]["name"]) <= SETTINGS.job_name_budget
    assert "--" not in manifest["metadata"]["name"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_answered_with_errors_never_exceptions(body: bytes) -> None:
    data, errors = decode_body(body)
    if data is None:
        assert errors
        return
    try:
        parse_request(data, settings=SETTINGS)
    except RequestInvalid as e:
        assert e.errors


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=10,
    )
)
def test_arbitrary_json_is_answered_with_errors(value: Any) -> None:
    data, errors = decode_body(json.dumps(value).encode())
    if data is None:
        assert errors
        return
    try:
        parse_request(data, settings=SETTINGS)
    except RequestInvalid as e:
        assert e.errors


valid_requests = st.fixed_dictionaries(
    {
        "image": st.sampled_from(
            ["mcr.microsoft.com/azurelinux/base/core:3.0", "busybox:1.36", "docker.io/library/python:3.11"]
        )
    },
    optional={
        "id": label_text,
        "command": st.lists(st.text(max_size=30), min_size=1, max_size=4),
        "env": st.dictionaries(
            st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True), st.text(min_size=1, max_size=40), max_size=5
        ),
        "cpu": st.sampled_from(["100m", "250m", "0.5", "1", "2", "4", 1, 2.5]),
        "memory": st.sampled_from(["128Mi", "512Mi", "1Gi", "1.5Gi", "14Gi", "16G", "2G"]),
        "completions": st.integers(min_value=1, max_value=100),
        "timeoutSeconds": st.integers(min_value=1, max_value=86_400),
        "retries": st.integers(min_value=0, max_value=10),
        "labels": st.dictionaries(label_text, label_text, max_size=3),
        "correlationId": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,30}[A-Za-z0-9]", fullmatch=True),
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_requests)
def test_well_formed_requests_are_accepted_and_render_valid_jobs(body: dict[str, Any]) -> None:
    request = parse_request(body, settings=SETTINGS)
    manifest = build_job(request, JobMeta(key=request.id or "m", message_id="m", enqueued_at=None), settings=SETTINGS)
    kubernetes_validate.validate(manifest, "1.33", strict=True)
    assert schedulable_on_virtual_node(manifest["spec"]["template"]["spec"])
    if request.completions > 1:
        assert manifest["spec"]["completionMode"] == "Indexed"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(min_size=1, max_size=60).map(lambda b: (b * (70_000 // len(b) + 1))[:70_000]),
        # repeated snippets: multi-byte characters and control characters that JSON escapes 6×
        st.text(min_size=1, max_size=40).map(lambda t: (t * (70_000 // len(t) + 1))[:70_000].encode()),
    )
)
def test_a_rejection_event_for_any_body_fits_one_queue_message(body: bytes) -> None:
    from shared.base.errors import FieldError
    from shared.outcomes import events

    errors = [FieldError(f"f{i}", "x" * 200) for i in range(20)]
    text = events.request_rejected(
        source="/vnode-batch", message_id="m", body=body, errors=errors, now=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert len(text.encode()) <= 64 * 1024
    data = json.loads(text)["data"]
    assert data["bodySize"] == len(body)
    kept = data["body"].encode() if "body" in data else base64.b64decode(data["bodyBase64"])
    assert body.startswith(kept)
    assert data["bodyTruncated"] is (len(kept) < len(body))
