"""Fair share between teams (shared.capacity.fairshare): levels, borrowing, reservations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shared.capacity.fairshare import Held, Share, level, need, refusal
from shared.capacity.teamview import WaitingQueue

BUDGET = Held(Decimal(100), 100)
SHARES = {
    "a": Share(Held(Decimal(50), 50), Held(Decimal(50), 50), Decimal(5)),
    "b": Share(Held(Decimal(30), 30), Held(Decimal(70), 70), Decimal(3)),
    "c": Share(Held(Decimal(20), 20), None, Decimal(2)),
}


def h(cores: int, groups: int | None = None) -> Held:
    return Held(Decimal(cores), cores if groups is None else groups)


def test_level_is_the_dominant_share_of_the_nominal_then_of_the_borrowed_budget() -> None:
    assert level(h(25), SHARES["a"], budget=BUDGET, weights=Decimal(10)) == Decimal("0.5")
    assert level(h(10, 25), SHARES["a"], budget=BUDGET, weights=Decimal(10)) == Decimal("0.5")  # groups dominate
    # a borrows 10 cores of 100 with half the weights: 1 + 0.1 / 0.5
    assert level(h(60), SHARES["a"], budget=BUDGET, weights=Decimal(10)) == Decimal("1.2")
    # b borrowing 6 with 3/10 of the weights is at the same level: water-filling by weight
    assert level(h(36), SHARES["b"], budget=BUDGET, weights=Decimal(10)) == Decimal("1.2")


def test_need_inverts_level() -> None:
    weights = Decimal(10)
    for held in (h(0), h(12), h(45)):
        for target in (Decimal("0.5"), Decimal("1.2")):
            got = need(held, SHARES["b"], target, budget=BUDGET, weights=weights)
            reached = level(held.plus(got), SHARES["b"], budget=BUDGET, weights=weights)
            assert got == Held(Decimal(0), 0) or reached == target


def test_a_borrower_waits_while_a_team_below_its_share_waits() -> None:
    held = {"a": h(70), "b": h(25)}
    why = refusal("a", h(2), used=h(95), budget=BUDGET, held=held, waiting={"b": h(8)}, shares=SHARES)
    assert why is not None
    assert "team(s) b" in why
    # b itself takes it: it is below its nominal share
    assert refusal("b", h(2), used=h(95), budget=BUDGET, held=held, waiting={"a": h(50)}, shares=SHARES) is None


def test_idle_capacity_is_borrowed_when_nobody_lower_waits() -> None:
    held = {"a": h(50), "b": h(29)}  # c idle: a at its nominal share, b one core below, 21 free
    # a borrowing 4 reaches level 1.08; b needs 3.4 cores to get there, which is reserved: fits
    assert refusal("a", h(4), used=h(79), budget=BUDGET, held=held, waiting={"b": h(10)}, shares=SHARES) is None
    # with 5 cores free the reservation does not leave room: b goes first
    why = refusal("a", h(4), used=h(95), budget=BUDGET, held=held, waiting={"b": h(10)}, shares=SHARES)
    assert why is not None
    assert "team(s) b" in why
    # nobody else waits: a borrows
    assert refusal("a", h(4), used=h(95), budget=BUDGET, held=held, waiting={}, shares=SHARES) is None


def test_two_teams_at_the_same_level_never_hold_each_other_back() -> None:
    # Both at their nominal share (level 1), one core free, each with a 1-core request waiting.
    # Reserving for "every team below the level I would reach" refused both (each would pass the
    # other): the core idled until another Job ended. The order (level, then name) lets one go.
    held = {"a": h(50), "b": h(30), "c": h(19)}

    def why(team: str, waiting: dict[str, Held]) -> str | None:
        return refusal(team, h(1), used=h(99), budget=BUDGET, held=held, waiting=waiting, shares=SHARES)

    assert why("a", {"a": h(1), "b": h(1)}) is None
    assert why("b", {"a": h(1), "b": h(1)}) is not None
    # and a team below both still goes first: c (0.95) is ahead of a and b
    assert why("a", {"a": h(1), "b": h(1), "c": h(1)}) is not None
    assert why("c", {"a": h(1), "b": h(1), "c": h(1)}) is None


def test_the_borrowing_limit_holds_even_with_room() -> None:
    why = refusal("a", h(2), used=h(99), budget=BUDGET, held={"a": h(99)}, waiting={}, shares=SHARES)
    assert why is not None
    assert "borrowing limit" in why


def test_a_team_of_no_share_is_not_held_back() -> None:
    assert refusal("z", h(2), used=h(0), budget=BUDGET, held={}, waiting={"a": h(50)}, shares=SHARES) is None


def test_the_waiting_queue_orders_a_team_by_priority_then_age_and_forgets_stale_entries() -> None:
    q = WaitingQueue(ttl=10)
    t0 = datetime(2026, 12, 7, tzinfo=UTC)
    q.wait("old", "a", "normal", t0, h(1), now=0)
    q.wait("new", "a", "normal", t0 + timedelta(seconds=5), h(1), now=1)
    q.wait("vip", "a", "urgent", t0 + timedelta(seconds=9), h(1), now=2)
    q.wait("other", "b", "normal", t0 - timedelta(seconds=1), h(2), now=2)
    assert q.position("vip", 3) == (4, 4, 1, 3)
    assert q.position("old", 3) == (2, 4, 2, 3)
    assert q.ahead_in_team("old", "a", "normal", 3) == 1
    assert q.delay("vip", longest=8) < q.delay("new", longest=8)
    assert q.by_team(3, exclude="old") == {"a": h(2), "b": h(2)}
    assert q.by_team(11.5) == {"a": h(1, 1), "b": h(2)} or q.by_team(11.5) == {"b": h(2), "a": h(1)}
    assert q.by_team(20) == {}
