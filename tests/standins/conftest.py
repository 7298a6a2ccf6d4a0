"""Fixtures of the Kubernetes stand-in tests (test_kube_standin.py, test_job_tracking.py): one
stand-in per test at time scale 0.01 (``sleep 100`` in a script lasts one real second) and the
official client's APIs over HTTPS to it. A test file may define its own ``kube`` instead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.standins.kube.apiserver import KubeStandIn
from tests.standins.test_kube_standin import Clients


@pytest.fixture
def kube() -> Iterator[KubeStandIn]:
    with KubeStandIn(time_scale=0.01, tick_seconds=0.01) as server:
        yield server
        assert server.controller_errors == []


@pytest.fixture
def k8s(kube: KubeStandIn) -> Clients:
    return Clients(kube)
