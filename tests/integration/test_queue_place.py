"""Where a waiting request stands among *all* waiting requests (issue 22), with two dispatcher
instances racing: each knows only the requests its own deliveries brought back, and the
reconciler's pass places every ``waiting-for-capacity`` record of the ledger among all of them
(``shared.flows.ranking``). Azurite for the ledger, the Kubernetes stand-in for the Jobs."""

from __future__ import annotations

import collections
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.standins.kube.apiserver import KubeStandIn
from shared.adapters.tables import Tables
from shared.base.times import parse_time
from shared.capacity.admission import REFRESH_SHARE, Admission
from shared.cluster.gate import KubeconfigGate
from shared.flows import reconcile
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound, Outcome
from shared.ledger.records import Query, State
from shared.ledger.store import Ledger
from tests.integration.conftest import race
from tests.integration.test_teams import NS, settings_with, sleeper, team

pytestmark = pytest.mark.integration


def waiting_places(ledger: Ledger) -> dict[str, dict[str, Any]]:
    records, _ = ledger.list(Query(state=State.WAITING_FOR_CAPACITY), limit=200)
    return {r.key: {"team": r.team, **(r.queue or {})} for r in records}


def test_two_racing_dispatchers_keep_shares_and_every_waiting_request_gets_its_global_place_and_eta(
    app_env: dict[str, str], kube: KubeStandIn, tmp_path: Path
) -> None:
    budget = 6
    settings = settings_with(
        app_env,
        tmp_path,
        [team("team-a", 3, 0, priorities=["normal", "high"]), team("team-b", 3, 0)],
        VNB_CAPACITY_CONTAINER_GROUPS=str(budget),
        VNB_CAPACITY_CACHE_SECONDS="0.01",
    )
    gate = KubeconfigGate(settings)
    ledger = Ledger(Tables(settings))
    # The running Jobs end one after another: each request has its own deadline.
    bodies = {
        f"{t}-{i}": sleeper(f"{t}-{i}", f"team-{t}", timeoutSeconds=600 + 300 * (2 * i + (t == "b")))
        for i in range(8)
        for t in "ab"
    }
    handled = race(
        [Inbound(message_id=key, body=body) for key, body in bodies.items()],
        settings=settings,
        gate=gate,
        ledger=ledger,
    )
    created = collections.Counter("team-" + m.message_id[0] for m, outcome in handled if outcome == Outcome.CREATED)
    deferred = {m.message_id for m, outcome in handled if outcome != Outcome.CREATED}
    # Shares kept: neither team may borrow, so each holds its nominal 3 (plus the documented slack).
    slack = max(1, round(budget * REFRESH_SHARE))
    assert 3 <= created["team-a"] <= 3 + slack
    assert 3 - slack <= created["team-b"] <= 3 + slack
    assert sum(created.values()) == len(kube.jobs(NS))
    before = waiting_places(ledger)
    assert set(before) == deferred

    # The reconciler's pass places every waiting request among all of them.
    events: list[str] = []
    report = reconcile.run(settings=settings, gate=gate, send_event=events.append, ledger=ledger)
    assert report.aborted is None
    ranked = waiting_places(ledger)
    waiting = len(ranked)
    assert sorted(q["position"] for q in ranked.values()) == list(range(1, waiting + 1))
    assert {q["waiting"] for q in ranked.values()} == {waiting}
    for name in ("team-a", "team-b"):
        mine = [q for q in ranked.values() if q["team"] == name]
        assert sorted(q["teamPosition"] for q in mine) == list(range(1, len(mine) + 1))
        assert {q["teamWaiting"] for q in mine} == {len(mine)}
    # Oldest first: the order of the ledger's received times.
    by_place = sorted(ranked, key=lambda k: ranked[k]["position"])
    received = {k: ledger.get(k).received_at for k in ranked}  # type: ignore[union-attr]
    assert by_place == sorted(ranked, key=lambda k: (received[k], k))
    # ETA present: the first waiting request may start when the first running Job reaches its deadline.
    first = ranked[by_place[0]]
    jobs = kube.jobs(NS)
    soonest = min(
        parse_time(j["status"].get("startTime") or j["metadata"]["creationTimestamp"])
        + timedelta(seconds=j["spec"]["activeDeadlineSeconds"])
        for j in jobs
    )
    assert abs((parse_time(first["estimatedStartAt"]) - soonest).total_seconds()) <= 2
    assert all("estimatedBy" in q and "rankedAt" in q for q in ranked.values())

    # A dispatcher deferring it again keeps the global place (its own view is partial).
    again = Admission(settings)
    last = by_place[-1]
    message = Inbound(message_id=f"again-{last}", body=bodies[last])
    result = dispatch(message, settings=settings, gate=gate, requeue=lambda t, d: None, admission=again, ledger=ledger)
    assert result.outcome == Outcome.DEFERRED
    assert waiting_places(ledger)[last]["position"] == waiting

    # ETA updated: a high-priority request of team a arrives; at the next pass it is first, and
    # the request that was first now waits for the second Job to end.
    hi = Inbound(message_id="a-hi", body=sleeper("a-hi", "team-a", priority="high", timeoutSeconds=900))
    result = dispatch(hi, settings=settings, gate=gate, requeue=lambda t, d: None, admission=again, ledger=ledger)
    assert result.outcome == Outcome.DEFERRED
    later = datetime.now(UTC) + timedelta(seconds=reconcile.RANK_EVERY_SECONDS + 1)
    report = reconcile.run(settings=settings, gate=gate, send_event=events.append, ledger=ledger, now=lambda: later)
    assert report.aborted is None
    after = waiting_places(ledger)
    assert after["a-hi"]["position"] == 1
    assert after["a-hi"]["teamPosition"] == 1
    assert after[by_place[0]]["position"] == 2
    assert parse_time(after[by_place[0]]["estimatedStartAt"]) > parse_time(first["estimatedStartAt"])
    assert events == []  # nothing finished: the passes only placed the waiting requests
