"""Every waiting request's place and estimated start, from all of them at once (pure).

A dispatcher instance only knows the requests its own queue deliveries brought back
(``shared.capacity.teamview.WaitingQueue``), so the place it can tell is among those. The
reconciler — one per cluster: a timer trigger runs on one instance at a time — reads every
``waiting-for-capacity`` record of the ledger once per pass and places each among all of them
with this module (``shared.flows.ranking`` does the reads and writes).

Order: priority (``urgent`` first), then age (received first), then key — overall and within
each team, as the team's own requests are admitted (``shared.capacity.fairshare`` rule 2).
Across teams the order is a forecast like the estimate: a team further below its share goes
first whatever its requests' age.

Estimate: the running Jobs end in the order ``shared.capacity.eta.endings`` expects; a request
may start once what they free covers what waits before it in that order plus its own demand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.capacity import eta
from shared.capacity.fairshare import Held
from shared.capacity.teamview import rank


@dataclass(frozen=True)
class Waiter:
    """One waiting request as the ledger has it."""

    key: str
    team: str | None
    priority: str
    since: datetime
    wants: Held


def places(
    waiters: Iterable[Waiter], *, endings: list[eta.Ending], free: Held, now: datetime, observed: int
) -> dict[str, dict[str, Any]]:
    """By key: ``position``/``waiting`` overall, ``teamPosition``/``teamWaiting`` in its team
    (1-based) and ``estimatedStartAt``/``estimatedBy`` (``shared.capacity.eta.estimate``)."""
    order = sorted(waiters, key=lambda w: (-rank(w.priority), w.since, w.key))
    per_team = Counter(w.team for w in order)
    seen: Counter[str | None] = Counter()
    ahead = Held()
    out: dict[str, dict[str, Any]] = {}
    for place, w in enumerate(order, 1):
        seen[w.team] += 1
        out[w.key] = {
            "position": place,
            "waiting": len(order),
            "teamPosition": seen[w.team],
            "teamWaiting": per_team[w.team],
            **eta.estimate(endings, free=free, ahead=ahead, demand=w.wants, now=now, observed=observed),
        }
        ahead = ahead.plus(w.wants)
    return out


def wants_of(queue: dict[str, Any] | None) -> Held:
    """What a waiting request needs, as its dispatcher wrote it (``wants``); nothing if unknown."""
    wants = (queue or {}).get("wants") or {}
    try:
        return Held(Decimal(str(wants.get("cores") or 0)), int(wants.get("groups") or 0))
    except (ArithmeticError, ValueError, TypeError):
        return Held()
