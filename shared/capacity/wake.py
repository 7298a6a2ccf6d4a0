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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from shared.capacity import fairshare
from shared.capacity.fairshare import Held
from shared.capacity.teamview import URGENT, Shares, rank, total


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
    left = list(order)
    while left and standing.free():
        pick = _next_fair(left, standing, shares, unwakeable)
        if pick is None:
            break
        standing.take(pick)
        picked.append(pick)
        left.remove(pick)
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


def _next_fair(
    left: list[Sleeper], standing: Standing, shares: Shares, unwakeable: Sequence[Sleeper]
) -> Sleeper | None:
    urgent = [s for s in left if s.priority == URGENT]
    for s in urgent:  # before any team's level, never past a borrowing limit (rule 1)
        if standing.fits(s) and _within_limit(s, standing, shares):
            return s
    blocked_by_urgent = total(s.wants for s in [*urgent, *unwakeable] if s.priority == URGENT)
    weights = sum((share.weight for share in shares.values()), Decimal(0))
    by_team: dict[str | None, list[Sleeper]] = {}
    waiting: dict[str, Held] = {}  # a team's own entry is not read by ``fairshare.refusal``
    highest: dict[str, int] = {}  # by team: the highest priority waiting, urgent included
    for s in [*left, *unwakeable]:
        if s.team:
            waiting[s.team] = waiting.get(s.team, Held()).plus(s.wants)
            highest[s.team] = max(highest.get(s.team, 0), rank(s.priority))
    for s in left:
        if s.priority != URGENT:
            by_team.setdefault(s.team if s.team in shares else None, []).append(s)

    def level(team: str | None) -> Decimal:
        if team is None:  # no team: admission checks the budget only
            return Decimal(-1)
        return fairshare.level(standing.held.get(team, Held()), shares[team], budget=standing.whole, weights=weights)

    for team in sorted(by_team, key=lambda t: (level(t), t or "")):
        mine = by_team[team]
        top = -rank(mine[0].priority)
        if team is not None and -top < highest.get(team, 0):
            continue  # rule 2: one of its own of a higher priority waits (admission's ``ahead_in_team``)
        # Rule 2: its own order; every request of its top priority is tried, oldest first — a
        # younger, smaller one may fit where the older ones do not, and admission takes either.
        # (Trying only the first 16 left a team whose oldest were all large idle behind them:
        # bench/ideal_fair.py, 0.2 % of the quota idle while a request would fit → 0.1 %.)
        for s in [s for s in mine if -rank(s.priority) == top]:
            if not standing.fits(s) or not standing.used.plus(s.wants).plus(blocked_by_urgent).fits(standing.whole):
                continue
            if team is None or _fair(s, waiting, standing, shares):
                return s
    return None


def _within_limit(s: Sleeper, standing: Standing, shares: Shares) -> bool:
    share = shares.get(s.team or "")
    if share is None or share.borrow is None:
        return True
    return standing.held.get(s.team or "", Held()).plus(s.wants).fits(share.nominal.plus(share.borrow))


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
