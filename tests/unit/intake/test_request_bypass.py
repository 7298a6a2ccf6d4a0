"""Inputs that looked valid to the app but not to the platform (review of issue 19)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.config.settings import Settings
from shared.intake.request import RequestInvalid, normalize_image, parse_request

GOOD = {"image": "mcr.microsoft.com/azurelinux/base/core:3.0", "command": ["sh", "-c", "echo hi"]}


def refused(settings: Settings, **fields: Any) -> list[tuple[str, str]]:
    try:
        parse_request({**GOOD, **fields}, settings=settings)
    except RequestInvalid as e:
        return [(x.field, x.message) for x in e.errors]
    return []


# distribution/reference normalize.go splitDockerDomain: a first component with an upper-case
# letter is a registry host, never a Docker Hub namespace.
@pytest.mark.parametrize("image", ["EVIL/x", "AI/x:1", "LOCALHOST/x", "Library/busybox", "eViL/team/x"])
def test_an_upper_case_first_component_is_a_registry_not_docker_hub(image: str, make_settings: Any) -> None:
    docker_hub = make_settings(VNB_ALLOWED_REGISTRIES="docker.io,mcr.microsoft.com")
    errors = refused(docker_hub, image=image)
    assert [f for f, _ in errors] == ["image"]
    assert "is not allowed" in errors[0][1]
    assert not normalize_image(image).startswith("docker.io/")


def test_docker_hub_names_still_pass_with_docker_io_allowed(make_settings: Any) -> None:
    docker_hub = make_settings(VNB_ALLOWED_REGISTRIES="docker.io")
    for image in ("busybox", "library/busybox:1.36", "myorg/tool:1", "docker.io/busybox", "index.docker.io/myorg/x"):
        assert refused(docker_hub, image=image) == [], image
    assert normalize_image("index.docker.io/busybox") == "docker.io/library/busybox"


# Python's `$` matches before a final "\n"; Go's RE2 (kube-apiserver) does not.
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"image": "mcr.microsoft.com/azurelinux/base/core:3.0\n"}, "image"),
        ({"labels": {"team\n": "data"}}, "labels"),
        ({"labels": {"team": "data\n"}}, "labels"),
        ({"labels": {"app.kubernetes.io\n/name": "x"}}, "labels"),
        ({"id": "job-1\n"}, "id"),
        ({"correlationId": "c-1\n"}, "correlationId"),
        ({"env": {"NAME\n": "x"}}, "env"),
    ],
    ids=["image", "label name", "label value", "label prefix", "id", "correlationId", "env name"],
)
def test_a_trailing_newline_is_refused(fields: dict[str, Any], field: str, settings: Settings) -> None:
    assert field in [f.split(".")[0] for f, _ in refused(settings, **fields)]


@pytest.mark.parametrize(
    "key",
    [
        "azure.workload.identity/use",
        "istio.io/rev",
        "sidecar.istio.io/inject",
        "virtual-kubelet.io/provider",
        "example.com/team",
        "kubernetes.io/hostname",
        "batch.kubernetes.io/job-name",
        "vnode-batch.io/state",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/anything",
    ],
)
def test_label_prefixes_outside_the_allowlist_are_refused(key: str, settings: Settings) -> None:
    errors = refused(settings, labels={key: "true"})
    assert [f for f, _ in errors] == ["labels"]
    assert "app.kubernetes.io/name" in errors[0][1]  # says what is allowed


def test_label_checks_are_the_api_servers(settings: Settings) -> None:
    # IsLabelKey: a name part of up to 63, a prefix up to 253 with labels longer than 63 allowed.
    assert refused(settings, labels={"a" * 63: "b" * 63}) == []
    assert refused(settings, labels={"a" * 64: "b"})
    assert refused(settings, labels={"a": "b" * 64})
    assert refused(settings, labels={"a/b/c": "x"})
    assert refused(settings, labels={"/b": "x"})
