"""Fair share of the capacity budget between teams (pure; docs/operations.md, "Sharing between teams").

Each team has a nominal share of the budget (cores, container groups), a borrowing limit on top
and a weight (``shared.teams.model``). What a team holds is what its pods hold now (``usage_of``
over its own Jobs and pods, plus this process's admissions not yet listed). ACI cannot pause a
container group, so nothing is taken back: fairness is in who gets capacity as it frees up.

**Level.** A team's level orders the teams, lowest first (Kueue's fair sharing, KEP-1714,
"dominant resource share", extended below the nominal share):

* within its nominal share: ``level = max_r held_r / nominal_r`` (0 … 1), the dominant share of
  what it is guaranteed;
* borrowing: ``level = 1 + max_r (held_r − nominal_r)⁺ / budget_r ÷ (weight / Σ weights)``:
  what it borrows beyond its nominal, as a dominant share of the whole budget, per unit of its
  normalised weight.

Over the two quota resources r ∈ {cores, container groups}; a team with a nominal of 0 on a
resource it uses is at level 1 already (it can only borrow).

**Admission.** One more Job of team ``t`` (demand ``D``) is admitted when the budget fits it
(``Budget.exhausted``) and

1. ``held_t + D ≤ nominal_t + borrowingLimit_t`` on both resources;
2. no request of ``t`` with a higher priority is waiting (its own requests: priority, then age);
3. it still fits after reserving, for every *waiting* team ``u`` ahead of ``t`` — lower in the
   order (level now, then name) — what ``u`` needs to reach the level ``t`` would reach with
   this Job (capped by what ``u`` is known to wait for and by what its own borrowing limit
   still lets it take — a team at its limit is owed nothing):
   ``used + D + Σ_u min(waiting_u, need_u(level_t + D), limit_u − held_u) ≤ budget`` on both
   resources.

So a freed core goes to the waiting team furthest below its share; an idle team's share is
borrowed by the others in proportion to their weights (water-filling: each borrower's level
rises at the same rate); a team within its nominal share is never held back by a borrower.

Why "ahead now" and not "below the level ``t`` would reach": with the latter, two teams at the
same level (every backlogged team sits at exactly 1 at its nominal share) each reserve for the
other what the other's next Job would put it above, and with fewer cores free than a Job and
that reservation, *neither* is admitted: the cores idle until another Job ends. The first team
in the order is never held back by a reservation, so one of them always goes (it may overshoot
the other by one Job, which the next freed core evens out). Measured by ``bench/ideal_fair.py``
(this rule with no latency, on ``bench/fairshare.py``'s workload): 0.7 % of the quota idled
while a request would fit under the old reading, 0.2 % under this one, shares unchanged.

Why the held level and not a decaying history of core-seconds (AWS Batch's ``shareDecaySeconds``):
the contended resource is what is held *now* (the quota counts live container groups), and
without preemption the only lever is who gets the next freed slot — a history term would give
that slot to a team that already holds more than its share now, leaving the quota's current
split further from the shares for a whole Job's duration. The history the level needs is
therefore only as long as Jobs run, and the Jobs' own pods carry it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

INFINITE: Final = Decimal("Infinity")


@dataclass(frozen=True)
class Held:
    """Cores and container groups (held, wanted or reserved)."""

    cores: Decimal = Decimal(0)
    groups: int = 0

    def plus(self, other: Held) -> Held:
        return Held(self.cores + other.cores, self.groups + other.groups)

    def minus(self, other: Held) -> Held:
        return Held(self.cores - other.cores, self.groups - other.groups)

    def fits(self, budget: Held) -> bool:
        return self.cores <= budget.cores and self.groups <= budget.groups


@dataclass(frozen=True)
class Share:
    """A team's entitlement (``shared.teams.model.Team``'s capacity fields)."""

    nominal: Held
    borrow: Held | None = None
    """Borrowing limit beyond the nominal share; None: up to the budget."""
    weight: Decimal = Decimal(1)

    @property
    def limit(self) -> Held | None:
        """The most the team may hold (nominal share + borrowing limit); None: up to the budget."""
        return None if self.borrow is None else self.nominal.plus(self.borrow)


def level(held: Held, share: Share, *, budget: Held, weights: Decimal) -> Decimal:
    """The team's level (module docstring): below 1 within its nominal share, above when borrowing."""
    guaranteed = max(
        _ratio(held.cores, share.nominal.cores), _ratio(Decimal(held.groups), Decimal(share.nominal.groups))
    )
    if guaranteed <= 1:
        return guaranteed
    over = max(
        _ratio(max(Decimal(0), held.cores - share.nominal.cores), budget.cores),
        _ratio(Decimal(max(0, held.groups - share.nominal.groups)), Decimal(budget.groups)),
    )
    return 1 + over * weights / share.weight


def need(held: Held, share: Share, target: Decimal, *, budget: Held, weights: Decimal) -> Held:
    """What the team must get to reach level ``target`` (0 if it is there already)."""
    if target <= 1:
        cores = target * share.nominal.cores
        groups = target * share.nominal.groups
    else:
        extra = (target - 1) * share.weight / weights
        cores = share.nominal.cores + extra * budget.cores
        groups = share.nominal.groups + extra * budget.groups
    return Held(max(Decimal(0), cores - held.cores), max(0, int(groups) - held.groups))


def refusal(
    team: str,
    demand: Held,
    *,
    used: Held,
    budget: Held,
    held: Mapping[str, Held],
    waiting: Mapping[str, Held],
    shares: Mapping[str, Share],
) -> str | None:
    """Why team ``team``'s Job of ``demand`` must wait for fairness, or None (rules 1 and 3 of
    the module docstring; ``used``: the whole app's usage, which the budget already fits with
    ``demand``; ``waiting``: by team, the demand known to wait)."""
    share = shares.get(team)
    if share is None:
        return None
    mine = held.get(team, Held())
    after = mine.plus(demand)
    cap = share.limit
    if cap is not None and not after.fits(cap):
        return (
            f"team {team} holds {_num(mine.cores)} cores, {mine.groups} container groups; "
            f"its nominal share plus borrowing limit is {_num(cap.cores)} cores, {cap.groups} groups"
        )
    weights = sum((s.weight for s in shares.values()), Decimal(0))
    mine_level = level(after, share, budget=budget, weights=weights)
    mine_now = level(mine, share, budget=budget, weights=weights)
    reserved = Held()
    lower: list[str] = []
    for other, wants in waiting.items():
        theirs = shares.get(other)
        if other == team or theirs is None or (not wants.cores and not wants.groups):
            continue
        have = held.get(other, Held())
        if (level(have, theirs, budget=budget, weights=weights), other) >= (mine_now, team):
            continue  # not ahead of this team in the order (level, then name): it goes after
        owed = need(have, theirs, mine_level, budget=budget, weights=weights)
        owed = Held(min(owed.cores, wants.cores), min(owed.groups, wants.groups))
        if theirs.limit is not None:  # never more than its own limit still lets it take (rule 1)
            room = theirs.limit.minus(have)
            if room.cores <= 0 or room.groups <= 0:
                continue  # at its limit: it can take no Job, so nothing is owed to it
            owed = Held(min(owed.cores, room.cores), min(owed.groups, room.groups))
        reserved = reserved.plus(owed)
        lower.append(other)
    if lower and not used.plus(demand).plus(reserved).fits(budget):
        return (
            f"fair share: team(s) {', '.join(sorted(lower))} further below their share wait for "
            f"{_num(reserved.cores)} cores, {reserved.groups} container groups"
        )
    return None


def _ratio(value: Decimal, of: Decimal) -> Decimal:
    if value <= 0:
        return Decimal(0)
    return value / of if of > 0 else INFINITE


def _num(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')).normalize():f}"
