"""The pure helpers of the virtual-node model that other tests build on: ``refusal``,
``aci_resources``, ``pod_generate_name``. Values from the sources cited in the modules."""

from __future__ import annotations

import random
from typing import Any

import pytest

from devtools.standins.virtual_node import aci_resources, dropped_fields, pod_generate_name, refusal
from devtools.standins.virtual_node.env import expand
from devtools.standins.virtual_node.naming import RANDOM_ALPHABET


def pod(name: str = "job-abcde", **container: Any) -> dict[str, Any]:
    c = {"name": "main", "image": "busybox", "command": ["sh", "-c", "true"]} | container
    return {"metadata": {"name": name, "namespace": "vnode-batch"}, "spec": {"containers": [c]}}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({}, (1.0, 1.0, 1.5, 1.5)),  # azure-aci defaults without requests
        (
            {"requests": {"cpu": "125m", "memory": "1Gi"}, "limits": {"cpu": "125m", "memory": "1Gi"}},
            (0.12, 0.125, 1.0, 1.0),
        ),
        (
            {"requests": {"cpu": "1", "memory": "1.5Gi"}, "limits": {"cpu": "1", "memory": "1.5Gi"}},
            (1.0, 1.0, 1.6, 1.6),
        ),
        ({"requests": {"cpu": "5m", "memory": "1Mi"}}, (0.01, 0.01, 0.1, 0.1)),  # floors of 0.01 / 0.1
        ({"requests": {"cpu": "0.333", "memory": "15Gi"}, "limits": {}}, (0.33, 0.33, 16.1, 16.1)),
        ({"limits": {"cpu": "2", "memory": "2G"}}, (2.0, 2.0, 2.0, 2.0)),  # requests default to limits
    ],
)
def test_aci_resources(resources: dict[str, Any], expected: tuple[float, float, float, float]) -> None:
    assert aci_resources({"resources": resources}) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("job", "index", "prefix"),
    [
        ("nightly", None, "nightly-"),
        ("nightly", 7, "nightly-7-"),
        ("x" * 63, None, "x" * 58),
        ("y" * 60, 12, "y" * 54 + "-12-"),  # podGenerateNameWithIndex keeps the index
    ],
)
def test_pod_generate_name(job: str, index: int | None, prefix: str) -> None:
    name = pod_generate_name(job, index, rng=random.Random(1))
    assert name.startswith(prefix)
    assert len(name) == len(prefix) + 5
    assert set(name[len(prefix) :]) <= set(RANDOM_ALPHABET)


def test_refusal_accepts_a_plain_pod() -> None:
    assert refusal("vnode-batch", pod()) is None


@pytest.mark.parametrize(
    ("manifest", "code"),
    [
        (pod("x" * 52), "InvalidContainerGroupName"),
        (pod("a--b-12345"), "InvalidContainerGroupName"),
        (pod(args=["x"], command=[]), "InvalidInput"),
        (pod(startupProbe={"exec": {"command": ["true"]}}), "InvalidInput"),
        (pod(env=[{"name": "A.B", "value": "1"}]), "InvalidContainerEnvironmentVariable"),
        (
            pod(resources={"requests": {"cpu": "125m"}, "limits": {"cpu": "125m"}}),
            "ContainerLimitGreaterThanContainerGroupTotalRequest",
        ),
        (pod(resources={"requests": {"memory": "2G"}, "limits": {"memory": "1G"}}), "ResourceLimitsLessThanRequests"),
        (pod(resources={"requests": {"cpu": "5"}}), "ServiceUnavailable"),
        (pod(resources={"limits": {"nvidia.com/gpu": "1"}}), "ProviderError"),
    ],
)
def test_refusal_codes(manifest: dict[str, Any], code: str) -> None:
    found = refusal("vnode-batch", manifest)
    assert found is not None
    assert found.code == code


def test_missing_secret_keeps_the_pod_pending() -> None:
    found = refusal("vnode-batch", pod(env=[{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]))
    assert found is not None
    assert found.stuck


@pytest.mark.parametrize("path", ["status.podIP", "status.hostIP", "status.phase"])
def test_a_status_field_ref_keeps_the_pod_pending(path: str) -> None:
    # virtual-kubelet ExtractFieldPathAsString: "unsupported fieldPath" (reference/virtual-node.md).
    found = refusal("vnode-batch", pod(env=[{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": path}}}]))
    assert found is not None
    assert found.stuck
    assert path in found.message


def test_metadata_and_spec_field_refs_resolve() -> None:
    env = [
        {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
    ]
    assert refusal("vnode-batch", pod(env=env)) is None


def test_expansion_matches_the_kubelet_rules() -> None:
    values = {"A": "1"}

    def mapping(name: str) -> str:
        return values.get(name, f"$({name})")

    assert expand("$(A)-$$(A)-$(B)-$-$(A", mapping) == "1-$(A)-$(B)-$-$(A"


def test_dropped_fields_are_listed() -> None:
    manifest = pod(workingDir="/w", resources={"requests": {"ephemeral-storage": "1Gi"}})
    manifest["spec"]["hostNetwork"] = True
    assert dropped_fields(manifest) == [
        "spec.hostNetwork",
        "spec.containers[0].workingDir",
        "spec.containers[0].resources.requests.ephemeral-storage",
    ]
