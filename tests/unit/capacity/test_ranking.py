"""Every waiting request placed among all of them (``shared.capacity.ranking``): priority, then age,
overall and in its team; the estimate counts what waits before it in that order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.capacity.eta import Ending
from shared.capacity.fairshare import Held
from shared.capacity.ranking import Waiter, places, wants_of

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
ONE = Held(Decimal(1), 1)


def waiter(key: str, team: str, age: int, priority: str = "normal") -> Waiter:
    return Waiter(key, team, priority, NOW - timedelta(seconds=age), ONE)


def test_places_go_by_priority_then_age_overall_and_in_each_team() -> None:
    got = places(
        [
            waiter("a-old", "a", 300),
            waiter("b-old", "b", 200),
            waiter("a-new", "a", 10),
            waiter("b-hi", "b", 5, "high"),
        ],
        endings=[],
        free=Held(),
        now=NOW,
        observed=0,
    )
    assert {k: (v["position"], v["teamPosition"]) for k, v in got.items()} == {
        "b-hi": (1, 1),
        "a-old": (2, 1),
        "b-old": (3, 2),
        "a-new": (4, 2),
    }
    assert {v["waiting"] for v in got.values()} == {4}
    assert {v["teamWaiting"] for v in got.values()} == {2}


def test_the_estimate_waits_for_what_is_ahead_to_be_freed_first() -> None:
    ends = [Ending(NOW + timedelta(minutes=m), ONE) for m in (5, 10, 20)]
    got = places(
        [waiter("w1", "a", 30), waiter("w2", "a", 20), waiter("w3", "b", 10)],
        endings=ends,
        free=Held(),
        now=NOW,
        observed=3,
    )
    assert [got[k]["estimatedStartAt"] for k in ("w1", "w2", "w3")] == [
        "2026-12-07T12:05:00Z",
        "2026-12-07T12:10:00Z",
        "2026-12-07T12:20:00Z",
    ]
    # Nothing frees enough for a fourth: it says so instead of guessing.
    more = places([*(waiter(f"w{i}", "a", 40 - i) for i in range(4))], endings=ends, free=Held(), now=NOW, observed=3)
    assert "estimatedStartAt" not in more["w3"]
    assert "no estimate yet" in more["w3"]["estimatedBy"]


def test_what_a_waiting_request_wants_is_read_back_from_its_dispatchers_note() -> None:
    assert wants_of({"wants": {"cores": 2.5, "groups": 3}}) == Held(Decimal("2.5"), 3)
    assert wants_of(None) == Held()
    assert wants_of({"wants": {"cores": "x"}}) == Held()


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(0, 1000), st.sampled_from(["low", "normal", "high", "urgent"])),
        max_size=30,
    )
)
def test_places_are_a_permutation_overall_and_per_team(entries: list[tuple[str, int, str]]) -> None:
    waiters = [
        Waiter(f"k{i}", team, prio, NOW - timedelta(seconds=age), ONE) for i, (team, age, prio) in enumerate(entries)
    ]
    got = places(waiters, endings=[], free=Held(), now=NOW, observed=0)
    assert sorted(v["position"] for v in got.values()) == list(range(1, len(waiters) + 1))
    for team in "abc":
        mine = sorted(v["teamPosition"] for k, v in got.items() if waiters[int(k[1:])].team == team)
        assert mine == list(range(1, len(mine) + 1))
