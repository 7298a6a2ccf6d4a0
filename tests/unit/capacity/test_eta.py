"""Estimated start of a waiting request (shared.capacity.eta) and when it is worth a ledger write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.base.times import iso
from shared.capacity.eta import duration_of, endings, estimate
from shared.capacity.fairshare import Held
from shared.ledger.records import queue_changed

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def job(started: datetime, *, cpu: str = "1", deadline: int = 3600, done: datetime | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": iso(started)}
    if done is not None:
        status["completionTime"] = iso(done)
        status["conditions"] = [{"type": "Complete", "status": "True", "lastTransitionTime": iso(done)}]
    container = {"resources": {"requests": {"cpu": cpu}}}
    return {
        "metadata": {"creationTimestamp": iso(started)},
        "spec": {"activeDeadlineSeconds": deadline, "template": {"spec": {"containers": [container]}}},
        "status": status,
    }


def test_running_jobs_end_at_their_median_observed_duration_or_deadline() -> None:
    assert duration_of(job(NOW - timedelta(seconds=300), done=NOW)) == 300
    running = [job(NOW - timedelta(seconds=100), cpu="2"), job(NOW - timedelta(seconds=50), deadline=120)]
    got = endings(running, now=NOW, durations=[600.0])
    assert [(e.at - NOW).total_seconds() for e in got] == [70, 500]  # deadline first, then median
    assert got[1].frees == Held(Decimal(2), 1)


def test_the_estimate_is_when_enough_has_ended_for_what_waits_ahead_and_itself() -> None:
    got = endings([job(NOW, cpu="2"), job(NOW + timedelta(seconds=60), cpu="2")], now=NOW, durations=[])
    one = Held(Decimal(1), 1)
    free_now = estimate(got, free=Held(Decimal(1), 1), ahead=Held(), demand=one, now=NOW, observed=0)
    assert free_now["estimatedStartAt"] == iso(NOW)
    later = estimate(got, free=Held(), ahead=Held(Decimal(2), 1), demand=one, now=NOW, observed=0)
    assert later["estimatedStartAt"] == iso(NOW + timedelta(seconds=3660))
    assert "deadline" in later["estimatedBy"]
    never = estimate(got, free=Held(), ahead=Held(Decimal(10), 10), demand=one, now=NOW, observed=0)
    assert "estimatedStartAt" not in never


def test_a_new_position_or_estimate_is_written_only_when_it_moved_enough() -> None:
    base = {"position": 100, "teamPosition": 3, "estimatedStartAt": iso(NOW + timedelta(hours=1))}
    assert queue_changed(None, base, now=NOW)
    assert not queue_changed(base, {**base, "position": 95}, now=NOW)
    assert queue_changed(base, {**base, "position": 90}, now=NOW)
    assert queue_changed(base, {**base, "teamPosition": 2}, now=NOW)
    assert not queue_changed(base, {**base, "estimatedStartAt": iso(NOW + timedelta(minutes=65))}, now=NOW)
    assert queue_changed(base, {**base, "estimatedStartAt": iso(NOW + timedelta(minutes=30))}, now=NOW)
