"""Properties of the fair-share rule (shared.capacity.fairshare.refusal) and of the reconciler's
picks that follow it (shared.capacity.wake.choose), on random teams files and holdings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.capacity.fairshare import Held, Share, level, refusal
from shared.capacity.wake import Sleeper, Standing, choose

BUDGET = Held(Decimal(100), 100)
T0 = datetime(2026, 12, 7, tzinfo=UTC)
NAMES = ("a", "b", "c", "d")


def h(cores: int, groups: int | None = None) -> Held:
    return Held(Decimal(cores), cores if groups is None else groups)


@st.composite
def teams_files(draw: st.DrawFn) -> dict[str, Share]:
    n = draw(st.integers(2, 4))
    out: dict[str, Share] = {}
    for name in NAMES[:n]:
        nominal = draw(st.integers(0, 60))
        borrow = draw(st.one_of(st.none(), st.integers(0, 60)))
        out[name] = Share(h(nominal), None if borrow is None else h(borrow), Decimal(draw(st.integers(1, 9))))
    return out


def cap(share: Share) -> Held:
    return share.nominal.plus(share.borrow) if share.borrow is not None else BUDGET


@st.composite
def situations(draw: st.DrawFn) -> tuple[dict[str, Share], dict[str, Held], dict[str, Held]]:
    """(shares, held by team within each team's limit and the budget, waiting by team)."""
    shares = draw(teams_files())
    held: dict[str, Held] = {}
    used = 0
    for name, share in shares.items():
        most = min(int(cap(share).cores), 100 - used)
        cores = draw(st.integers(0, max(0, most)))
        held[name] = h(cores)
        used += cores
    waiting = {name: h(draw(st.integers(0, 12))) for name in shares}
    return shares, held, waiting


def order(name: str, shares: dict[str, Share], held: dict[str, Held]) -> tuple[Decimal, str]:
    weights = sum((s.weight for s in shares.values()), Decimal(0))
    return level(held[name], shares[name], budget=BUDGET, weights=weights), name


@settings(max_examples=400, deadline=None)
@given(situations(), st.integers(1, 4))
def test_the_first_waiting_team_in_the_order_is_never_held_back_by_a_reservation(
    situation: tuple[dict[str, Share], dict[str, Held], dict[str, Held]], cores: int
) -> None:
    # What makes "ahead now" deadlock-free: whoever is first in (level, then name) among the
    # waiting teams is refused only by its own borrowing limit, never by rule 3.
    shares, held, waiting = situation
    used = sum((x.cores for x in held.values()), Decimal(0))
    demand = h(cores)
    if used + demand.cores > BUDGET.cores:
        return
    asking = [t for t, w in waiting.items() if w.cores]
    if not asking:
        return
    first = min(asking, key=lambda t: order(t, shares, held))
    why = refusal(first, demand, used=h(int(used)), budget=BUDGET, held=held, waiting=waiting, shares=shares)
    assert why is None or "borrowing limit" in why, why


@settings(max_examples=400, deadline=None)
@given(situations(), st.sampled_from(NAMES), st.integers(1, 4))
def test_a_team_at_its_borrowing_limit_is_owed_nothing(
    situation: tuple[dict[str, Share], dict[str, Held], dict[str, Held]], full: str, cores: int
) -> None:
    # A team that holds its nominal share plus its borrowing limit cannot take one more Job
    # (rule 1): capacity reserved for it idles until one of its own Jobs ends. Whether it waits
    # or not must not change anyone else's answer.
    shares, held, waiting = situation
    if full not in shares or shares[full].borrow is None:
        return
    held = {**held, full: cap(shares[full])}
    used = sum((x.cores for x in held.values()), Decimal(0))
    if used + cores > BUDGET.cores:
        return
    without = {t: w for t, w in waiting.items() if t != full}
    for team in shares:
        if team == full:
            continue
        kwargs = {"used": h(int(used)), "budget": BUDGET, "held": held, "shares": shares}
        with_full = refusal(team, h(cores), waiting={**waiting, full: h(8)}, **kwargs)  # type: ignore[arg-type]
        assert (with_full is None) == (refusal(team, h(cores), waiting=without, **kwargs) is None), with_full  # type: ignore[arg-type]


def test_a_team_at_its_limit_does_not_keep_another_from_the_idle_quota() -> None:
    # a may hold 30 + 5; b has no limit; c (40) is idle. a holds its 35 and waits for more; b
    # holds 50 and waits. a (level 1.15) is ahead of b (1.6), and b's next core would bring b to
    # 1.63, which a "needs" 16 more cores to reach — 16 cores a's own limit forbids it to take.
    # Reserving them anyway kept b from the last 15 free cores until one of a's Jobs ended.
    shares = {
        "a": Share(h(30), h(5), Decimal(1)),
        "b": Share(h(30), None, Decimal(1)),
        "c": Share(h(40), None, Decimal(1)),
    }
    held = {"a": h(35), "b": h(50)}
    assert refusal("b", h(1), used=h(85), budget=BUDGET, held=held, waiting={"a": h(20)}, shares=shares) is None
    sleepers = [Sleeper(f"{t}-{i:02d}", t, "normal", T0 + timedelta(seconds=i), h(1)) for t in "ab" for i in range(20)]
    picked = choose(sleepers, Standing(h(85), BUDGET, 300, dict(held)), shares)
    assert [s.key for s in picked] == [f"b-{i:02d}" for i in range(15)]


@settings(max_examples=150, deadline=None)
@given(
    situations(),
    st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from([1, 2, 4])), min_size=1, max_size=25),
)
def test_the_picks_are_what_admission_takes_one_by_one_and_leave_nothing_it_would_take(
    situation: tuple[dict[str, Share], dict[str, Held], dict[str, Held]], asks: list[tuple[str, int]]
) -> None:
    # wake.choose sorts the teams by (level, name) and admission (refusal) reserves for the teams
    # ahead in the same order: replayed against refusal with every sleeper waiting, each pick is
    # admitted, and once choose stops no sleeper left would be.
    shares, held, _ = situation
    sleepers = [
        Sleeper(f"{t}-{i:02d}", t, "normal", T0 + timedelta(seconds=i), h(c))
        for i, (t, c) in enumerate(asks)
        if t in shares
    ]
    used = sum((x.cores for x in held.values()), Decimal(0))
    standing = Standing(Held(used, int(used)), BUDGET, 10**6, dict(held))
    picked = choose(sleepers, standing, shares)
    now = dict(held)
    left = list(sleepers)

    def admits(s: Sleeper) -> bool:
        total = sum((x.cores for x in now.values()), Decimal(0))
        if total + s.wants.cores > BUDGET.cores:
            return False
        waiting: dict[str, Held] = {}
        for o in left:
            if o is not s:
                waiting[str(o.team)] = waiting.get(str(o.team), Held()).plus(o.wants)
        why = refusal(
            str(s.team), s.wants, used=Held(total, int(total)), budget=BUDGET, held=now, waiting=waiting, shares=shares
        )
        return why is None

    for s in picked:
        assert admits(s), s
        now[str(s.team)] = now.get(str(s.team), Held()).plus(s.wants)
        left.remove(s)
    assert not [s for s in left if admits(s)]
