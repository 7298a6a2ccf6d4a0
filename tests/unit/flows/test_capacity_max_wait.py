"""A request sleeping for capacity comes back by the time VNB_CAPACITY_MAX_WAIT_SECONDS ends, so
its ``CapacityTimeout`` is on time (``shared.flows.dispatch._wait_for_capacity``). The cluster is
the in-memory ``CapacitySource`` of ``tests.unit.capacity.test_admission`` (full), the ledger the
model world's ``MemTable``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from shared.base.handles import MessageHandle
from shared.capacity.admission import Admission
from shared.cluster.readiness import Readiness
from shared.config.settings import Settings
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound, Outcome
from shared.ledger.store import Ledger
from tests.model.memtable import MemTable
from tests.unit.capacity.test_admission import FakeCluster
from tests.unit.capacity.test_capacity import job, pod
from tests.unit.flows.test_dispatch_service import BODY, T0


class Full:
    """A ready cluster whose container groups are all held by running Jobs."""

    def __init__(self) -> None:
        self.cluster = FakeCluster()
        self.cluster.jobs = [job(f"j{i}", age=600, active=1) for i in range(2)]
        self.cluster.pods = [pod(f"j{i}", "Running", age=590) for i in range(2)]

    def check(self) -> Readiness:
        return Readiness(cluster=self.cluster, reason="")  # type: ignore[arg-type]


class Requeued:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def __call__(self, text: str, delay: int) -> MessageHandle:
        self.sent.append((text, delay))
        return MessageHandle(f"m-{len(self.sent)}", "receipt")


def test_a_sleeping_request_is_back_when_its_longest_wait_ends(make_settings: Callable[..., Any]) -> None:
    settings: Settings = make_settings(
        VNB_CAPACITY_CONTAINER_GROUPS="2", VNB_CAPACITY_MAX_WAIT_SECONDS="260", VNB_CAPACITY_SLEEP_SECONDS="120"
    )
    requeue = Requeued()
    at = T0 + timedelta(seconds=250)  # 10 s of its 260 left
    result = dispatch(
        Inbound(message_id="m-0", body=BODY, inserted_at=T0),
        settings=settings,
        gate=Full(),
        requeue=requeue,
        now=lambda: at,
        ledger=Ledger(MemTable()),
        admission=Admission(settings),
    )
    assert result.outcome is Outcome.DEFERRED
    [(_, delay)] = requeue.sent
    # Sleeping longer would end the wait up to VNB_CAPACITY_SLEEP_SECONDS late.
    assert 250 + delay <= 260 + 1
