"""Which sleeping requests the reconciler wakes when capacity frees (shared.capacity.wake.choose)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.capacity.fairshare import Held, refusal
from shared.capacity.teamview import WaitingQueue
from shared.capacity.wake import Sleeper, Standing, choose
from tests.unit.capacity.test_fairshare import BUDGET, SHARES, h

T0 = datetime(2026, 12, 7, tzinfo=UTC)


def sleeper(key: str, cores: int, *, team: str | None = None, age: int = 0, priority: str = "normal") -> Sleeper:
    return Sleeper(key, team, priority, T0 + timedelta(seconds=age), h(cores, 1))


def standing(used: int, *, held: dict[str, Held] | None = None, creates: int = 300) -> Standing:
    return Standing(h(used, used), BUDGET, creates, dict(held or {}))


def keys(picked: list[Sleeper]) -> list[str]:
    return [s.key for s in picked]


def test_without_teams_the_oldest_that_fit_are_woken_and_no_more_than_is_free() -> None:
    sleepers = [sleeper("big-old", 4, age=0), sleeper("small", 1, age=1), sleeper("mid", 2, age=2)]
    # 3 cores free: the oldest (4) does not fit, the next two do.
    assert keys(choose(sleepers, standing(97), {})) == ["small", "mid"]
    assert keys(choose(sleepers, standing(100), {})) == []
    assert keys(choose([sleeper("x", 1, priority="low", age=0), sleeper("y", 1, age=5)], standing(99), {})) == ["y"]


def test_a_full_create_window_wakes_nobody() -> None:
    assert choose([sleeper("a", 1)], standing(0, creates=0), {}) == []
    assert keys(choose([sleeper("a", 1, age=0), sleeper("b", 1, age=1)], standing(0, creates=1), {})) == ["a"]


def test_the_team_furthest_below_its_share_is_woken_first_whatever_the_age() -> None:
    held = {"a": h(60), "b": h(20), "c": h(10)}  # levels: a borrows, b 0.67, c 0.5
    sleepers = [
        sleeper("a-old", 2, team="a", age=0),
        sleeper("b-1", 2, team="b", age=5),
        sleeper("c-1", 2, team="c", age=9),
    ]
    assert keys(choose(sleepers, standing(90, held=held), SHARES)) == ["c-1", "b-1", "a-old"]  # lowest level first


def test_an_urgent_request_goes_first_but_never_past_its_borrowing_limit() -> None:
    held = {"a": h(99)}
    sleepers = [sleeper("c-1", 1, team="c", age=0), sleeper("a-urgent", 1, team="a", age=9, priority="urgent")]
    # a holds its nominal + borrowing limit (50 + 50 = 100 would allow it; 99 + 1 = 100 fits):
    assert keys(choose(sleepers, standing(99, held=held), SHARES)) == ["a-urgent"]
    over = {"a": h(100)}
    assert keys(choose(sleepers, Standing(h(98, 98), Held(Decimal(100), 100), 300, over), SHARES)) == ["c-1"]


def test_a_team_is_woken_in_its_own_order_priority_first() -> None:
    sleepers = [sleeper("b-low", 1, team="b", age=0, priority="low"), sleeper("b-high", 1, team="b", age=5)]
    assert keys(choose(sleepers, standing(99, held={"b": h(10)}), SHARES)) == ["b-high"]


def test_a_sleeper_the_waiting_queue_was_told_about_is_remembered_past_the_ttl() -> None:
    q = WaitingQueue(ttl=10, slack=2)
    q.wait("long", "a", "normal", T0, h(1), now=0)
    q.expect("long", back_in=120)
    q.wait("short", "b", "normal", T0, h(1), now=0)
    assert q.by_team(100) == {"a": h(1)}  # b asked to come back within the ttl and did not
    assert q.by_team(123) == {}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", None]), st.integers(1, 4), st.sampled_from(["low", "normal", "urgent"])
        ),
        max_size=40,
    ),
    st.integers(0, 100),
    st.integers(0, 40),
)
def test_the_picks_together_fit_the_budget_and_each_would_be_admitted_in_turn(
    wanted: list[tuple[str | None, int, str]], used: int, creates: int
) -> None:
    sleepers = [sleeper(f"k{i}", cores, team=team, age=i, priority=p) for i, (team, cores, p) in enumerate(wanted)]
    held = {"a": h(used // 2), "b": h(used // 4)}
    held["c"] = h(used - used // 2 - used // 4)
    start = Standing(h(used, used), BUDGET, creates, dict(held))
    picked = choose(sleepers, Standing(start.used, start.whole, start.creates, dict(held)), SHARES)
    assert len({s.key for s in picked}) == len(picked)
    total = start.used
    for s in picked:
        total = total.plus(s.wants)
    assert total.fits(BUDGET)
    assert sum(s.wants.groups for s in picked) <= creates
    # Replay: every pick is one admission would take (rule 1 and 3) given the picks before it.
    replay = Standing(start.used, start.whole, start.creates, dict(held))
    left = list(sleepers)
    for s in picked:
        left.remove(s)
        if s.team in SHARES and s.priority != "urgent":
            waiting: dict[str, Held] = {}
            for o in left:
                if o.team:
                    waiting[o.team] = waiting.get(o.team, Held()).plus(o.wants)
            why = refusal(
                s.team or "", s.wants, used=replay.used, budget=BUDGET, held=replay.held, waiting=waiting, shares=SHARES
            )
            assert why is None, why
        replay.take(s)


def test_a_team_below_its_share_that_cannot_be_woken_still_holds_a_borrower_back() -> None:
    """c (below its share) waits, but its message cannot be woken now (no handle, or backing off
    after a wake); a dispatcher that knows c waits refuses a's request for fairness, so waking a's
    would only put it back (and one that does not know c would give c's share away)."""
    held = {"a": h(60), "c": h(10)}  # a borrows, c is at half its share
    woken = choose(
        [sleeper("a-1", 2, team="a")], standing(98, held=held), SHARES, unwakeable=[sleeper("c-1", 2, team="c")]
    )
    assert keys(woken) == []
    assert refusal("a", h(2), used=h(98), budget=BUDGET, held=held, waiting={"c": h(2)}, shares=SHARES) is not None
    # With room for both, a's request is woken: c's two are left free for c.
    assert keys(
        choose([sleeper("a-1", 2, team="a")], standing(96, held=held), SHARES, unwakeable=[sleeper("c-1", 2, team="c")])
    ) == ["a-1"]


def test_an_urgent_request_that_cannot_be_woken_still_holds_normal_ones_back() -> None:
    held = {"a": h(10), "c": h(10)}
    urgent = sleeper("c-urgent", 2, team="c", priority="urgent")
    assert keys(choose([sleeper("a-1", 2, team="a")], standing(98, held=held), SHARES, unwakeable=[urgent])) == []


def test_a_request_is_not_woken_while_one_of_its_team_of_higher_priority_waits() -> None:
    """Admission refuses a team's request while one of its own of a higher priority waits (rule 2,
    ``WaitingQueue.ahead_in_team``), whether that one can be woken now or not, urgent or not."""
    held = {"a": h(10)}
    normal = sleeper("a-normal", 1, team="a")
    high = sleeper("a-high", 1, team="a", priority="high")
    assert keys(choose([normal], standing(90, held=held), SHARES, unwakeable=[high])) == []
    # a's urgent request fits the budget but not a's borrowing limit (a holds 99 of its 50 + 50):
    # its normal one, which would fit both, waits too.
    big = sleeper("a-urgent", 2, team="a", priority="urgent")
    roomy = Standing(h(98, 98), Held(Decimal(200), 200), 300, {"a": h(99)})
    assert keys(choose([normal, big], roomy, SHARES)) == []
    assert keys(choose([normal], standing(90, held=held), SHARES)) == ["a-normal"]


def test_a_team_whose_oldest_requests_are_all_too_large_still_takes_a_younger_one_that_fits() -> None:
    # Team a is furthest below its share; its twenty oldest ask for 4 cores and only 1 is free.
    # Admission takes a younger 1-core request of the same priority, so waking must find it too
    # (it looked at the first 16 only, and the core idled until another Job ended).
    held = {"a": h(40), "b": h(30), "c": h(20)}
    sleepers = [sleeper(f"a-big-{i:02d}", 4, team="a", age=i) for i in range(20)]
    sleepers += [sleeper("a-small", 1, team="a", age=30), sleeper("b-small", 1, team="b", age=0)]
    assert keys(choose(sleepers, standing(99, held=held), SHARES)) == ["a-small"]
