"""Which sleeping requests to wake when capacity frees: those admission would admit now (pure).

A request waiting for container groups or cores is put back on the queue invisible for up to
VNB_CAPACITY_SLEEP_SECONDS, and the handle of its message is kept in the ledger. The reconciler
(``shared.flows.wake``) sees capacity free up — it is the one that deletes finished Jobs' pods —
and wakes the requests this module picks, so freed capacity is taken within one pass instead of
whenever a message's delay happens to end. Waking is only a hint: the dispatcher still admits
each woken request against its own view (``shared.capacity.admission``), so a wrong pick costs
one deferral, never an over-admission.

The picks follow the admission rules in their order (docs/operations.md, "Sharing between
teams"):

* without teams (no teams file, or requests of no team): priority, then age, each that fits what
  is free (the dispatcher admits whatever fits, in the order messages come back);
* with teams: ``urgent`` requests first (by age), then repeatedly the team with the lowest level
  (``shared.capacity.fairshare.level``) whose best request — its highest priority waiting, then
  the oldest — admission would take: within the budget, its team's borrowing limit, and leaving
  what every team further below its share is owed (``fairshare.refusal``, with every waiting
  request known — the ledger's, not one instance's sample).

Each pick is charged to the standing before the next, so the picks together fit the budget.
Create windows are a third budget: each pick uses at least one create per container group.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from shared.capacity import fairshare
from shared.capacity.fairshare import Held
from shared.capacity.teamview import URGENT, Shares, rank


@dataclass(frozen=True)
class Sleeper:
    """A waiting request whose message can be woken (ledger ``queue.wants``, ``team``, priority)."""

    key: str
    team: str | None
    priority: str
    since: datetime
    wants: Held


@dataclass
class Standing:
    """What the app holds now against its budget (``Admission.standing``), charged with each pick.

    ``used``/``whole``: cores and container groups; ``creates``: creates left in the tighter of
    the two create windows; ``held``: by team."""

    used: Held
    whole: Held
    creates: int
    held: dict[str, Held]

    def take(self, sleeper: Sleeper) -> None:
        self.used = self.used.plus(sleeper.wants)
        self.creates -= sleeper.wants.groups
        if sleeper.team:
            self.held[sleeper.team] = self.held.get(sleeper.team, Held()).plus(sleeper.wants)

    def fits(self, sleeper: Sleeper) -> bool:
        return self.used.plus(sleeper.wants).fits(self.whole) and sleeper.wants.groups <= self.creates

    def free(self) -> bool:
        return self.used.cores < self.whole.cores and self.used.groups < self.whole.groups and self.creates > 0


def choose(
    sleepers: Iterable[Sleeper], standing: Standing, shares: Shares, *, unwakeable: Sequence[Sleeper] = ()
) -> list[Sleeper]:
    """The requests to wake, in the order admission would take them (module docstring).

    ``unwakeable``: the other waiting requests (no handle, or backing off after a wake): never
    picked, but with teams they still wait as admission sees them — an urgent one holds normal
    ones back, and a team below its share is owed its share (``fairshare.refusal``) — so a
    request admission would refuse for them is not woken.
    ``standing`` is charged with every pick (the caller's copy is changed)."""
    order = sorted(sleepers, key=lambda s: (-rank(s.priority), s.since, s.key))
    if not shares:
        return _first_fit(order, standing)
    picked: list[Sleeper] = []
    pool = _Pool(order, unwakeable, shares)
    while standing.free():
        pick = _next_fair(pool, standing, shares)
        if pick is None:
            break
        standing.take(pick)
        picked.append(pick)
        pool.remove(pick)
    return picked


def _first_fit(order: list[Sleeper], standing: Standing) -> list[Sleeper]:
    picked: list[Sleeper] = []
    for sleeper in order:
        if not standing.free():
            break
        if standing.fits(sleeper):
            standing.take(sleeper)
            picked.append(sleeper)
    return picked


class _Pool:
    """The requests still to pick from, with what every pick reads kept up to date as picks
    leave (one pass over the sleepers per ``choose``, not one per pick)."""

    def __init__(self, order: list[Sleeper], unwakeable: Sequence[Sleeper], shares: Shares) -> None:
        self.shares = shares
        self.urgent = [s for s in order if s.priority == URGENT]
        self.by_team: dict[str | None, list[Sleeper]] = {}
        for s in order:
            if s.priority != URGENT:
                self.by_team.setdefault(self._key(s), []).append(s)
        self.waiting: dict[str, Held] = {}  # a team's own entry is not read by ``fairshare.refusal``
        self.ranks: dict[str, Counter[int]] = {}  # by team: how many wait at each priority, urgent included
        self.blocked_by_urgent = Held()
        for s in [*order, *unwakeable]:
            if s.team:
                self.waiting[s.team] = self.waiting.get(s.team, Held()).plus(s.wants)
                self.ranks.setdefault(s.team, Counter())[rank(s.priority)] += 1
            if s.priority == URGENT:
                self.blocked_by_urgent = self.blocked_by_urgent.plus(s.wants)

    def _key(self, s: Sleeper) -> str | None:
        return s.team if s.team in self.shares else None  # no team (or an unknown one): budget only

    def highest(self, team: str) -> int:
        """The highest priority of ``team`` still waiting (urgent included)."""
        return max((r for r, n in self.ranks.get(team, Counter()).items() if n > 0), default=0)

    def remove(self, s: Sleeper) -> None:
        if s.priority == URGENT:
            self.urgent.remove(s)
            self.blocked_by_urgent = self.blocked_by_urgent.minus(s.wants)
        else:
            self.by_team[self._key(s)].remove(s)
        if s.team:
            self.waiting[s.team] = self.waiting[s.team].minus(s.wants)
            self.ranks[s.team][rank(s.priority)] -= 1


def _next_fair(pool: _Pool, standing: Standing, shares: Shares) -> Sleeper | None:
    for s in pool.urgent:  # before any team's level, never past a borrowing limit (rule 1)
        if standing.fits(s) and _within_limit(s, standing, shares):
            return s
    weights = sum((share.weight for share in shares.values()), Decimal(0))

    def level(team: str | None) -> Decimal:
        if team is None:  # no team: admission checks the budget only
            return Decimal(-1)
        return fairshare.level(standing.held.get(team, Held()), shares[team], budget=standing.whole, weights=weights)

    for team in sorted((t for t, mine in pool.by_team.items() if mine), key=lambda t: (level(t), t or "")):
        mine = pool.by_team[team]
        top = -rank(mine[0].priority)
        if team is not None and -top < pool.highest(team):
            continue  # rule 2: one of its own of a higher priority waits (admission's ``ahead_in_team``)
        # Rule 2: its own order; every request of its top priority is tried, oldest first — a
        # younger, smaller one may fit where the older ones do not, and admission takes either.
        # (Trying only the first 16 left a team whose oldest were all large idle behind them:
        # bench/ideal_fair.py, 0.2 % of the quota idle while a request would fit → 0.1 %.)
        tried: set[Held] = set()  # the answer depends on the team and the demand only
        for s in mine:
            if -rank(s.priority) != top:
                break  # ordered by priority first: the rest are lower
            if s.wants in tried:
                continue
            tried.add(s.wants)
            if not standing.fits(s) or not standing.used.plus(s.wants).plus(pool.blocked_by_urgent).fits(
                standing.whole
            ):
                continue
            if team is None or _fair(s, pool.waiting, standing, shares):
                return s
    return None


def _within_limit(s: Sleeper, standing: Standing, shares: Shares) -> bool:
    share = shares.get(s.team or "")
    if share is None or share.limit is None:
        return True
    return standing.held.get(s.team or "", Held()).plus(s.wants).fits(share.limit)


def _fair(s: Sleeper, waiting: Mapping[str, Held], standing: Standing, shares: Shares) -> bool:
    why = fairshare.refusal(
        s.team or "",
        s.wants,
        used=standing.used,
        budget=standing.whole,
        held=standing.held,
        waiting=waiting,
        shares=shares,
    )
    return why is None
