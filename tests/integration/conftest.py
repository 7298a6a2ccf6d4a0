"""Integration fixtures: a real Azurite, the HTTPS Kubernetes stand-in, and the local host
running the app on the real worker runtime (azure-functions-runtime) with the host's semantics.

Each test gets its own queue names, so one Azurite serves the whole session.
"""

from __future__ import annotations

import collections
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient, QueueServiceClient

from devtools.azurite import Azurite
from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from shared.config.settings import Settings
from shared.flows.inbound import Inbound, Outcome
from tests.conftest import BASE_ENV, REPO

# The shipped host.json, with the waits shortened so retries and polling take milliseconds.
# Same semantics (batching, visibility on failure, poison after maxDequeueCount).
FAST_HOST = {
    "version": "2.0",
    "extensions": {
        "queues": {
            "maxPollingInterval": "00:00:00.200",
            "visibilityTimeout": "00:00:00.100",
            "batchSize": 16,
            "newBatchThreshold": 8,
            "maxDequeueCount": 3,
            "messageEncoding": "none",
        }
    },
}


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite(REPO) as server:
        yield server


@pytest.fixture
def kube() -> Iterator[KubeStandIn]:
    with KubeStandIn(pod_start_seconds=0.02) as server:
        yield server


@pytest.fixture
def app_env(azurite: Azurite, kube: KubeStandIn, tmp_path: Path) -> dict[str, str]:
    prefix = "t" + uuid.uuid4().hex[:8]
    env = dict(BASE_ENV)
    env.update(
        {
            "AzureWebJobsStorage": azurite.connection_string,
            "VNB_REQUESTS_QUEUE": f"{prefix}-requests",
            "VNB_EVENTS_QUEUE": f"{prefix}-events",
            "VNB_FOLLOWUP_QUEUE": f"{prefix}-followup",
            "VNB_KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
            "VNB_KUBE_TIMEOUT_SECONDS": "5",
            "VNB_RECONCILE_SCHEDULE": "*/1 * * * * *",
            # Tests revoke roles on purpose; no need to wait for Azure's propagation delay.
            "VNB_PERMISSION_GRACE_SECONDS": "0",
            # One ledger table per test, like the queues.
            "VNB_LEDGER_TABLE": f"{prefix}ledger",
            # These tests look at finished Jobs; the ledger tests set 0 (the app's default).
            "VNB_KEEP_FINISHED_SECONDS": "3600",
        }
    )
    return env


@pytest.fixture
def make_runner(app_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., LocalHost]]:
    """``build(host_json=None, **settings)``: a :class:`LocalHost` on the repo's app (not started).

    Every host built here is stopped (its worker process killed) at teardown.
    """
    runners: list[LocalHost] = []

    def build(host: dict[str, Any] | None = None, **overrides: str) -> LocalHost:
        runner = LocalHost(
            REPO,
            settings={**app_env, **overrides},
            host_json=host or FAST_HOST,
            state_dir=tmp_path / f"host-state-{len(runners)}",
        )
        runners.append(runner)
        return runner

    yield build
    for runner in runners:
        runner.stop()


class Queues:
    """Test-side view of the app's queues (what a producer and a consumer would do)."""

    def __init__(self, service: QueueServiceClient, env: dict[str, str]) -> None:
        self.requests = service.get_queue_client(env["VNB_REQUESTS_QUEUE"])
        self.poison = service.get_queue_client(env["VNB_REQUESTS_QUEUE"] + "-poison")
        self.events = service.get_queue_client(env["VNB_EVENTS_QUEUE"])
        for q in (self.requests, self.poison, self.events):
            q.create_queue()

    def submit(self, body: dict[str, Any] | bytes | str) -> str:
        text = json.dumps(body) if isinstance(body, dict) else body
        return str(self.requests.send_message(text).id)

    def drain_events(self) -> list[dict[str, Any]]:
        return [json.loads(text) for text in drain(self.events)]

    def count(self, q: QueueClient) -> int:
        return int(q.get_queue_properties().approximate_message_count)


def drain(q: QueueClient) -> list[str]:
    out: list[str] = []
    while True:
        batch = list(q.receive_messages(max_messages=32, visibility_timeout=30))
        if not batch:
            return out
        for m in batch:
            out.append(str(m.content))
            q.delete_message(m)


@pytest.fixture
def queues(azurite: Azurite, app_env: dict[str, str]) -> Queues:
    return Queues(azurite.queue_service(), app_env)


def race(
    messages: Iterable[Inbound], *, settings: Settings, gate: Any, instances: int = 2, **dispatch_kw: Any
) -> list[tuple[Inbound, Outcome]]:
    """Dispatch ``messages`` from ``instances`` threads racing on one stream, each with its own
    ``Admission`` (what one dispatcher instance knows); deferred messages are not re-queued.
    Returns (message, outcome) in the order they were handled."""
    from shared.capacity.admission import Admission
    from shared.flows.dispatch import dispatch

    stream = collections.deque(messages)
    handled: list[tuple[Inbound, Outcome]] = []
    lock = threading.Lock()

    def instance() -> None:
        admission = Admission(settings)
        while True:
            with lock:
                if not stream:
                    return
                message = stream.popleft()
            result = dispatch(
                message,
                settings=settings,
                gate=gate,
                requeue=lambda text, delay: None,
                admission=admission,
                **dispatch_kw,
            )
            with lock:
                handled.append((message, result.outcome))

    threads = [threading.Thread(target=instance) for _ in range(instances)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return handled
