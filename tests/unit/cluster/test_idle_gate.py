"""IdleGate (shared.flows.idle) over an in-memory power record with ETags: what a dispatching
instance does with each phase, and how often it reads the record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.cluster.idle_gate import IdleGate
from shared.cluster.power import Phase, PowerRecord
from shared.cluster.readiness import Readiness
from shared.config.settings import Settings
from tests.conftest import make_env

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class MemoryStore:
    """A PowerStoreApi with Table storage's rules: replace only with the current ETag."""

    def __init__(self, record: PowerRecord | None) -> None:
        self.record, self.version, self.reads, self.writes = record, 1, 0, 0

    def read(self) -> tuple[PowerRecord | None, str | None]:
        self.reads += 1
        return self.record, (str(self.version) if self.record else None)

    def create(self, record: PowerRecord) -> bool:
        if self.record is not None:
            return False
        self.record, self.version = record, self.version + 1
        return True

    def swap(self, record: PowerRecord, etag: str) -> bool:
        if etag != str(self.version):
            return False
        self.record, self.version, self.writes = record, self.version + 1, self.writes + 1
        return True


class Inner:
    """The bootstrap gate's side: ready or not, and whether its cache was dropped."""

    def __init__(self, ready: bool = True) -> None:
        self.ready, self.checks, self.forgotten = ready, 0, 0

    def check(self) -> Readiness:
        self.checks += 1
        return Readiness(cluster=object() if self.ready else None, reason="" if self.ready else "starting")  # type: ignore[arg-type]

    def forget(self) -> None:
        self.forgotten += 1


@pytest.fixture
def settings() -> Settings:
    env = make_env(
        VNB_CLUSTER_MODE="aks",
        VNB_SUBSCRIPTION_ID="s",
        VNB_RESOURCE_GROUP="rg",
        VNB_APP_PRINCIPAL_ID="p",
        VNB_IDLE_STOP_MINUTES="30",
        VNB_READY_CACHE_SECONDS="60",
    )
    return Settings.from_env(env)


def gate(settings: Settings, store: MemoryStore, inner: Inner, ticks: list[float]) -> IdleGate:
    return IdleGate(settings, inner=inner, store=store, now=lambda: NOW, clock=lambda: ticks[0])  # type: ignore[arg-type]


def record(phase: Phase, minutes_ago: float = 0) -> PowerRecord:
    at = NOW - timedelta(minutes=minutes_ago)
    return PowerRecord(phase, at, at, "test")


def test_running_is_read_once_per_cache_window(settings: Settings) -> None:
    store, inner, ticks = MemoryStore(record(Phase.RUNNING)), Inner(), [0.0]
    g = gate(settings, store, inner, ticks)
    for _ in range(100):
        assert g.check().cluster is not None
    assert store.reads == 1
    ticks[0] = 61.0
    g.check()
    assert store.reads == 2


def test_a_request_during_the_drain_puts_the_record_back_before_it_proceeds(settings: Settings) -> None:
    store, inner = MemoryStore(record(Phase.DRAINING, 1)), Inner()
    assert gate(settings, store, inner, [0.0]).check().cluster is not None
    assert store.record is not None
    assert store.record.phase is Phase.RUNNING
    assert store.record.last_activity == NOW


def test_while_stopping_requests_wait_and_cached_answers_are_dropped(settings: Settings) -> None:
    store, inner = MemoryStore(record(Phase.STOPPING, 1)), Inner()
    answer = gate(settings, store, inner, [0.0]).check()
    assert answer.cluster is None
    assert "being stopped" in answer.reason
    assert (inner.forgotten, inner.checks) == (1, 0)


def test_stopped_lets_the_bootstrap_start_it_then_records_running(settings: Settings) -> None:
    store, inner, ticks = MemoryStore(record(Phase.STOPPED, 90)), Inner(ready=False), [0.0]
    g = gate(settings, store, inner, ticks)
    first = g.check()
    assert first.cluster is None
    assert "stopped for idleness" in first.reason
    assert store.record is not None
    assert store.record.phase is Phase.STOPPED
    inner.ready = True
    assert g.check().cluster is not None
    assert store.record.phase is Phase.RUNNING
    assert inner.forgotten == 1, "dropped once, when the phase was first seen"


def test_two_gates_cancelling_one_drain_write_once(settings: Settings) -> None:
    store = MemoryStore(record(Phase.DRAINING, 1))
    a, b = gate(settings, store, Inner(), [0.0]), gate(settings, store, Inner(), [0.0])
    assert a.check().cluster is not None
    assert b.check().cluster is not None
    assert store.writes == 1
    assert store.record is not None
    assert store.record.phase is Phase.RUNNING


def test_no_record_yet_means_running(settings: Settings) -> None:
    store = MemoryStore(None)
    assert gate(settings, store, Inner(), [0.0]).check().cluster is not None
    assert store.writes == 0
