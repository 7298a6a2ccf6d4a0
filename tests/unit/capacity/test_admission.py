"""Per-process admission against an in-memory cluster (the CapacitySource Protocol, not a patch):
list calls are cached, own creates are counted meanwhile, refusals shrink the budget."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from shared.adapters.kube import Page
from shared.capacity.admission import Admission
from shared.capacity.model import Demand
from shared.config.settings import Settings
from tests.unit.capacity.test_capacity import QUOTA_MESSAGE, job, pod

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ONE = Demand(groups=1, cores=Decimal(1), creates=1)


class FakeCluster:
    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.pods: list[dict[str, Any]] = []
        self.lists = 0

    def list_jobs(self, *, label_selector: str, limit: int, continue_token: str | None = None) -> Page:
        self.lists += 1
        return Page(list(self.jobs), None)

    def list_pods(self, *, label_selector: str) -> list[dict[str, Any]]:
        self.lists += 1
        return list(self.pods)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(make_settings: Callable[..., Settings], **env: str) -> tuple[Admission, FakeCluster, Clock]:
    clock = Clock()
    s = make_settings(
        VNB_CAPACITY_CONTAINER_GROUPS=env.pop("groups", "10"),
        VNB_CAPACITY_CACHE_SECONDS="5",
        **env,
    )
    return Admission(s, clock=clock), FakeCluster(), clock


def admit(a: Admission, c: FakeCluster, key: str = "k") -> Any:
    return a.admit(c, ONE, key=key, first_seen=NOW, now=NOW)


def test_own_creates_are_counted_without_listing_per_message(make_settings: Callable[..., Settings]) -> None:
    a, cluster, _ = make(make_settings, groups="100")
    for i in range(9):
        d = admit(a, cluster, f"k{i}")
        assert d.admitted
        a.created(d.ticket)
    # One refresh: the Jobs that may hold groups, the reported ones (first time only), the pods.
    assert cluster.lists == 3
    # A tenth of the budget admitted since the last list: list again before admitting more.
    for i in range(9, 30):
        a.created(admit(a, cluster, f"k{i}").ticket)
    assert cluster.lists == 7


def test_at_quota_the_next_request_waits_naming_the_resource(make_settings: Callable[..., Settings]) -> None:
    a, cluster, clock = make(make_settings)
    cluster.jobs = [job(f"j{i}", age=600, active=1) for i in range(10)]
    cluster.pods = [pod(f"j{i}", "Running", age=590) for i in range(10)]
    d = admit(a, cluster)
    assert not d.admitted
    assert d.reason == "waiting for capacity: 10/10 container groups in use, this request needs 1"
    assert 1 <= d.delay <= 20
    # Two Jobs finish and their pods are deleted: after the cache period the view says so.
    cluster.jobs, cluster.pods = cluster.jobs[2:], cluster.pods[2:]
    assert not admit(a, cluster).admitted  # still the cached view
    clock.t = 6
    assert admit(a, cluster).admitted


def test_charges_of_in_flight_creates_survive_a_refresh(make_settings: Callable[..., Settings]) -> None:
    a, cluster, clock = make(make_settings, groups="2")
    first = admit(a, cluster, "a")
    assert first.admitted
    clock.t = 6  # refresh while "a" is being created: the list cannot show it yet
    second = admit(a, cluster, "b")
    assert second.admitted
    assert not admit(a, cluster, "c").admitted
    a.refund(first.ticket)  # "a" turned out a duplicate: nothing was created
    assert admit(a, cluster, "c").admitted


def test_a_refusal_halves_the_budget_once_per_period_then_it_grows_back(make_settings: Callable[..., Settings]) -> None:
    a, cluster, clock = make(make_settings, groups="100")
    admit(a, cluster)
    a.refused(why="quota")
    a.refused(why="quota")  # the same burst of refusals: one shrink
    assert a.factor == pytest.approx(0.7)
    assert a.budget().scaled(100) == 70
    clock.t = 6
    # A refusal of a Job admitted before that shrink does not shrink again.
    a.refused(why="quota", created=datetime(2000, 1, 1, tzinfo=UTC))
    assert a.factor == pytest.approx(0.7)
    admit(a, cluster)  # a clean refresh after the cache period
    assert a.factor == pytest.approx(0.8)


def test_refused_pods_seen_in_the_list_shrink_the_budget(make_settings: Callable[..., Settings]) -> None:
    a, cluster, _ = make(make_settings, groups="100")
    cluster.jobs = [job("j", failed=1)]
    cluster.pods = [pod("j", "Failed", reason="ProviderFailed", message=QUOTA_MESSAGE)]
    admit(a, cluster)
    assert a.factor == pytest.approx(0.7)


def test_own_creates_stay_in_the_window_after_their_jobs_are_reported(make_settings: Callable[..., Settings]) -> None:
    a, cluster, clock = make(make_settings, VNB_CAPACITY_CREATES_PER_5MIN="3")
    for i in range(3):
        d = a.admit(cluster, ONE, key=f"k{i}", first_seen=NOW, now=NOW, job=f"job-{i}")
        assert d.admitted
        a.created(d.ticket)
    clock.t = 6  # the three Jobs already finished and were reported: no list shows them
    d = a.admit(cluster, ONE, key="k3", first_seen=NOW, now=NOW, job="job-3")
    assert not d.admitted
    assert "3/3 creates in the last 5 min" in d.reason
