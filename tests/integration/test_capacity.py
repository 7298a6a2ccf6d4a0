"""Capacity admission over real sockets: Azurite, the HTTPS Kubernetes stand-in with its model of
ACI's quotas (``devtools/standins/virtual_node/quotas.py``), and the app's own functions.

Each test gives the stand-in small quotas (``kube`` is parametrised indirectly) so that a handful
of requests reach them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from devtools.standins.virtual_node.provider import AciSettings
from devtools.standins.virtual_node.quotas import QuotaSettings
from shared.adapters.tables import Tables
from shared.capacity import model as capacity
from shared.capacity.admission import REFRESH_SHARE
from shared.cluster.gate import KubeconfigGate
from shared.config.settings import Settings
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound, Outcome
from shared.flows.reconcile import KubeJobs, reconcile
from shared.ledger import tracking
from shared.ledger.records import State
from shared.ledger.store import Ledger
from tests.conftest import wait_for
from tests.integration.conftest import Queues, race

pytestmark = pytest.mark.integration

NS = "vnode-batch"
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"


@pytest.fixture
def kube(request: pytest.FixtureRequest) -> Iterator[KubeStandIn]:
    """The stand-in with the quotas (and time scale) a test asks for."""
    kw: dict[str, Any] = dict(getattr(request, "param", {}))
    quotas = QuotaSettings(**kw.pop("quotas", {}))
    with KubeStandIn(pod_start_seconds=0.02, aci=AciSettings(quotas=quotas), **kw) as server:
        yield server


def request(key: str, *, seconds: float = 1, cpu: str = "1", **extra: Any) -> dict[str, Any]:
    return {"id": key, "image": IMAGE, "command": ["sh", "-c", f"sleep {seconds}"], "cpu": cpu, **extra}


def ledger_of(app_env: dict[str, str]) -> Ledger:
    """The app's request ledger (Azurite's table service), as GET /api/requests/{id} reads it."""
    return Ledger(Tables(Settings.from_env(app_env)))


def outcomes(queues: Queues, seen: dict[str, str]) -> dict[str, str]:
    for event in queues.drain_events():
        data = event.get("data") or {}
        seen.setdefault(str(data.get("requestKey")), f"{event['type'].rsplit('.', 1)[-1]}:{data.get('reason')}")
    return seen


@pytest.mark.parametrize("kube", [{"quotas": {"container_groups": 10}}], indirect=True)
def test_at_quota_the_next_request_is_deferred_not_created(
    make_runner: Callable[..., LocalHost],
    queues: Queues,
    kube: KubeStandIn,
    caplog: pytest.LogCaptureFixture,
    app_env: dict[str, str],
) -> None:
    caplog.set_level(logging.INFO, logger="vnode_batch")
    keys = [f"q-{i}" for i in range(3)]
    for key in keys:
        queues.submit(request(key, seconds=2))
    seen: dict[str, str] = {}
    ledger = ledger_of(app_env)

    def waiting() -> list[str]:
        return [k for k in keys if (r := ledger.get(k)) is not None and r.state == State.WAITING_FOR_CAPACITY]

    with make_runner(VNB_CAPACITY_CONTAINER_GROUPS="2", VNB_CAPACITY_DEFER_SECONDS="2"):
        wait_for(lambda: "waiting for capacity: 2/2 container groups in use" in caplog.text, what="a capacity deferral")
        # The third waits on the queue, no Job, no container group. The two admitted ones may still
        # be mid-create when the deferral is logged (another worker thread), so "at most 2" here;
        # the ACI stand-in's peak below proves no third group ever existed.
        assert len(kube.jobs(NS)) <= 2
        wait_for(lambda: len(waiting()) == 1, what="the ledger showing the third request waiting for capacity")
        (deferred,) = waiting()
        record = ledger.get(deferred)
        assert record is not None
        assert "container groups in use" in (record.reason or "")
        wait_for(lambda: len(outcomes(queues, seen)) == 3, what="three outcomes", timeout=60)
    assert seen == dict.fromkeys(keys, "succeeded:Completed")
    final = ledger.get(deferred)
    assert final is not None
    assert final.state == State.SUCCEEDED
    assert State.WAITING_FOR_CAPACITY.value in final.times  # its history keeps the wait
    counters = kube.aci.counters
    assert counters.peak_groups == 2
    assert sum(counters.creates_refused.values()) == 0


@pytest.mark.parametrize("kube", [{"quotas": {"container_groups": 1}}], indirect=True)
def test_a_quota_provider_failed_is_retried_and_then_succeeds(
    make_runner: Callable[..., LocalHost],
    queues: Queues,
    kube: KubeStandIn,
    caplog: pytest.LogCaptureFixture,
    app_env: dict[str, str],
) -> None:
    # The app believes in 2 groups, but something else in the subscription holds the rest of the
    # quota: ACI refuses the second pod (ContainerGroupQuotaReached) and the request goes back.
    caplog.set_level(logging.INFO, logger="vnode_batch")
    queues.submit(request("r-0", seconds=1))
    queues.submit(request("r-1", seconds=1))
    seen: dict[str, str] = {}
    with make_runner(VNB_CAPACITY_CONTAINER_GROUPS="2", VNB_CAPACITY_DEFER_SECONDS="1"):
        wait_for(lambda: len(outcomes(queues, seen)) == 2, what="two outcomes", timeout=60)
    assert seen == {"r-0": "succeeded:Completed", "r-1": "succeeded:Completed"}
    assert kube.aci.counters.creates_refused["ContainerGroupQuotaReached"] >= 1
    assert "ACI refused its pods for capacity (attempt 1 of 5)" in caplog.text
    assert queues.count(queues.poison) == 0
    # The ledger followed the give-back: the refused request went back to waiting (not to
    # failed), was submitted again, and ended succeeded with one outcome.
    ledger = ledger_of(app_env)
    records = [ledger.get(key) for key in ("r-0", "r-1")]
    assert all(r is not None and r.state == State.SUCCEEDED for r in records)
    requeued = [r for r in records if r is not None and State.WAITING_FOR_CAPACITY.value in r.times]
    assert requeued
    for record in requeued:
        assert record.attempts >= 1
        assert State.FAILED.value not in record.times


@pytest.mark.parametrize("kube", [{"quotas": {"container_groups": 10}}], indirect=True)
def test_injected_throttling_and_capacity_errors_are_retried(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    kube.aci.inject("TooManyRequests", 1)
    kube.aci.inject("ServiceUnavailable", 1)
    for i in range(3):
        queues.submit(request(f"t-{i}", seconds=0.5))
    seen: dict[str, str] = {}
    with make_runner(VNB_CAPACITY_DEFER_SECONDS="1"):
        wait_for(lambda: len(outcomes(queues, seen)) == 3, what="three outcomes", timeout=60)
    assert seen == {f"t-{i}": "succeeded:Completed" for i in range(3)}
    assert set(kube.aci.counters.creates_refused) == {"TooManyRequests", "ServiceUnavailable"}


@pytest.mark.parametrize("kube", [{"quotas": {"creates_per_5_minutes": 3}, "time_scale": 0.01}], indirect=True)
def test_a_create_rate_window_is_never_exceeded(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    # Time runs 100× faster in the stand-in: ACI's 5-minute window lasts 3 s, and so does the app's.
    caplog.set_level(logging.INFO, logger="vnode_batch")
    for i in range(7):
        queues.submit(request(f"w-{i}", seconds=1))
    seen: dict[str, str] = {}
    with make_runner(
        VNB_CAPACITY_CREATES_PER_5MIN="3",
        VNB_CAPACITY_WINDOW_SECONDS="3,36",
        VNB_CAPACITY_CACHE_SECONDS="0.2",
        VNB_CAPACITY_DEFER_SECONDS="1",
    ):
        wait_for(lambda: len(outcomes(queues, seen)) == 7, what="seven outcomes", timeout=60)
    assert seen == {f"w-{i}": "succeeded:Completed" for i in range(7)}
    assert sum(kube.aci.counters.creates_refused.values()) == 0
    assert "3/3 creates in the last 3 s" in caplog.text


@pytest.mark.parametrize("kube", [{"quotas": {"container_groups": 100}}], indirect=True)
def test_two_dispatchers_racing_stay_within_the_budget_plus_the_documented_slack(
    app_env: dict[str, str], kube: KubeStandIn
) -> None:
    # Two dispatcher instances (each with its own per-process view) take requests off one
    # stream as fast as they can. Their pods run far longer than the race, so every Job
    # created holds its container group. Slack: one refresh share of the budget per other
    # instance (shared.capacity.admission, docs/operations.md "Capacity").
    budget = 20
    settings = Settings.from_env(
        {**app_env, "VNB_CAPACITY_CONTAINER_GROUPS": str(budget), "VNB_CAPACITY_CACHE_SECONDS": "60"}
    )
    gate = KubeconfigGate(settings)
    messages = [
        Inbound(message_id=f"m-{i}", body=json.dumps(request(f"race-{i}", seconds=600)).encode()) for i in range(60)
    ]
    results = [outcome for _, outcome in race(messages, settings=settings, gate=gate)]
    slack = max(1, round(budget * REFRESH_SHARE))
    created = results.count(Outcome.CREATED)
    assert budget <= created <= budget + slack
    assert results.count(Outcome.DEFERRED) == 60 - created
    assert len(kube.jobs(NS)) == created
    assert sum(kube.aci.counters.creates_refused.values()) == 0


def test_a_duplicate_recording_submitted_after_a_give_back_does_not_drop_the_retry(
    app_env: dict[str, str], kube: KubeStandIn
) -> None:
    # The race, replayed step by step: a duplicate message of attempt 0 found the Job before the
    # reconciler condemned it, and writes "submitted" after the give-back moved the key back to
    # waiting-for-capacity. The requeued message of attempt 1 must still create the next Job.
    settings = Settings.from_env(app_env)
    ledger = ledger_of(app_env)
    gate = KubeconfigGate(settings)
    cluster = gate.check().cluster
    assert cluster is not None
    body = request("giveback-1", seconds=1, image="mcr.microsoft.com/provider-failed/app:1")
    first = dispatch(
        Inbound(message_id="m-1", body=json.dumps(body).encode()),
        settings=settings,
        gate=gate,
        requeue=lambda text, delay: None,
        ledger=ledger,
    )
    assert first.outcome is Outcome.CREATED
    record = ledger.get("giveback-1")
    assert record is not None
    assert record.state == State.SUBMITTED
    requeued: list[str] = []

    def give_back() -> bool:
        reconcile(
            settings=settings,
            jobs=KubeJobs(cluster),
            send_event=lambda text: None,
            ledger=ledger,
            requeue=lambda text, delay: requeued.append(text),
        )
        return bool(requeued)

    wait_for(give_back, what="ACI to refuse the pod and the reconciler to give the request back")
    record = ledger.get("giveback-1")
    assert record is not None
    assert record.state == State.WAITING_FOR_CAPACITY
    # The duplicate's step: its ETag is stale (it read "received"), so after the 412 it applies
    # "submitted" on top of what it reads now.
    tracking.submitted(ledger, key="giveback-1", job_name=str(first.job_name), now=datetime.now(UTC))
    record = ledger.get("giveback-1")
    assert record is not None
    assert record.state == State.SUBMITTED  # the stale step went through: the ledger cannot tell
    wait_for(lambda: not kube.jobs(NS), what="the condemned Job to go")
    retry = dispatch(
        Inbound(message_id="m-2", body=requeued[0].encode()),
        settings=settings,
        gate=gate,
        requeue=lambda text, delay: None,
        ledger=ledger,
    )
    assert retry.outcome is Outcome.CREATED, retry.detail
    (job,) = kube.jobs(NS)
    assert capacity.attempt_of(job) == 1
