"""What fair-share admission needs to know per team: entitlements, holdings, waiting requests.

``WaitingQueue`` is this process's memory of requests that waited for capacity recently (each
asks again by the delay it was given — VNB_CAPACITY_DEFER_SECONDS, or VNB_CAPACITY_SLEEP_SECONDS
when the reconciler can wake it — so an entry not seen past that, plus slack, is gone: admitted
elsewhere, cancelled or dead-lettered). With several dispatcher instances each one
sees the requests its own queue receives bring back — a sample of every team's waiting requests
that is refreshed at each deferral — so no storage call is made for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from shared.base.conventions import LABEL_TEAM
from shared.capacity.fairshare import Held, Share
from shared.capacity.model import Demand, usage_of
from shared.intake.request import PRIORITIES
from shared.teams.model import Teams

Shares = Mapping[str, Share]
URGENT: Final = "urgent"
"""The priority that goes before every team's level (never past a borrowing limit)."""
_LIMIT = 10_000


def shares_of(teams: Teams) -> dict[str, Share]:
    """The capacity entitlement of each team of the teams file."""
    out: dict[str, Share] = {}
    for t in teams.teams:
        borrow = None
        if t.borrow_cores is not None and t.borrow_groups is not None:
            borrow = Held(t.borrow_cores, t.borrow_groups)
        out[t.name] = Share(Held(t.cores, t.groups), borrow, t.weight)
    return out


def held_of(demand: Demand) -> Held:
    return Held(demand.cores, demand.groups)


def held_by_team(
    jobs: Iterable[dict[str, Any]], pods: Iterable[dict[str, Any]], *, now: datetime, windows: tuple[int, int]
) -> dict[str, Held]:
    """Cores and container groups each team's Jobs hold (``usage_of`` over its own Jobs and pods)."""
    return {t: h for t, h in held_by_label(jobs, pods, now=now, windows=windows).items() if t is not None}


def held_by_label(
    jobs: Iterable[dict[str, Any]], pods: Iterable[dict[str, Any]], *, now: datetime, windows: tuple[int, int]
) -> dict[str | None, Held]:
    """As :func:`held_by_team`, with what Jobs and pods of no team label hold under None."""
    jobs_of: dict[str | None, list[dict[str, Any]]] = {}
    pods_of: dict[str | None, list[dict[str, Any]]] = {}
    for into, objs in ((jobs_of, jobs), (pods_of, pods)):
        for obj in objs:
            team = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_TEAM)
            into.setdefault(str(team) if team else None, []).append(obj)
    out: dict[str | None, Held] = {}
    for team in set(jobs_of) | set(pods_of):
        u = usage_of(jobs_of.get(team, []), pods_of.get(team, []), now=now, windows=windows)
        out[team] = Held(u.cores, u.groups)
    return out


def rank(priority: str) -> int:
    return PRIORITIES.index(priority) if priority in PRIORITIES else PRIORITIES.index("normal")


@dataclass
class _Entry:
    team: str
    rank: int
    first_seen: datetime
    held: Held
    seen: float
    back_in: float = 0.0
    """Seconds after ``seen`` it was put back for (its visibility delay)."""


class WaitingQueue:
    """Requests of teams that waited for capacity in this process (see the module docstring)."""

    def __init__(self, ttl: float = 10.0, *, slack: float = 5.0) -> None:
        self.ttl = ttl
        self.slack = slack
        self._entries: dict[str, _Entry] = {}
        self._pruned = 0.0
        self._late = 0.0
        """Moving average of how much later than expected a waiting request asks again (the
        queue's backlog): an entry is kept three of those past when it was expected."""

    def wait(self, key: str, team: str, priority: str, first_seen: datetime, held: Held, now: float) -> None:
        seen = self._entries.get(key)
        if seen is not None:
            late = max(0.0, now - seen.seen - seen.back_in)
            self._late = 0.9 * self._late + 0.1 * late if self._late else late
        if now - self._pruned >= self.ttl:
            self._entries = {k: e for k, e in self._entries.items() if now < self._until(e)}
            self._pruned = now
        if len(self._entries) >= _LIMIT and key not in self._entries:
            self._entries.pop(min(self._entries, key=lambda k: self._entries[k].seen))
        self._entries[key] = _Entry(team, rank(priority), first_seen, held, now)

    def expect(self, key: str, *, back_in: float) -> None:
        """The request was put back for ``back_in`` seconds: remember it at least until then (plus
        slack and the queue's backlog), however long that is — a request that sleeps until woken
        (VNB_CAPACITY_SLEEP_SECONDS) still waits, and its team's share is still owed."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.back_in = back_in

    def admitted(self, key: str) -> None:
        self._entries.pop(key, None)

    def _until(self, entry: _Entry) -> float:
        return entry.seen + max(self.ttl, entry.back_in + self.slack + 3 * self._late)

    def _fresh(self, now: float) -> Iterable[tuple[str, _Entry]]:
        return ((k, e) for k, e in self._entries.items() if now < self._until(e))

    def ahead_in_team(self, key: str, team: str, priority: str, now: float) -> int:
        """Waiting requests of ``team`` with a higher priority than ``priority``."""
        mine = rank(priority)
        return sum(1 for k, e in self._fresh(now) if k != key and e.team == team and e.rank > mine)

    def by_team(self, now: float, *, exclude: str = "", rank_at_least: int = 0) -> dict[str, Held]:
        """What each team's waiting requests (of at least that priority rank) want."""
        out: dict[str, Held] = {}
        for k, e in self._fresh(now):
            if k != exclude and e.rank >= rank_at_least:
                out[e.team] = out.get(e.team, Held()).plus(e.held)
        return out

    def position(self, key: str, now: float) -> tuple[int, int, int, int] | None:
        """(place overall, waiting overall, place in its team, waiting in its team), 1-based, in
        the team's order (priority, then age); overall by age. None for a key not waiting here."""
        me = self._entries.get(key)
        if me is None:
            return None
        fresh = [e for _, e in self._fresh(now)] or [me]
        team = [e for e in fresh if e.team == me.team]
        overall = 1 + sum(1 for e in fresh if e is not me and e.first_seen < me.first_seen)
        in_team = 1 + sum(1 for e in team if e is not me and (-e.rank, e.first_seen) < (-me.rank, me.first_seen))
        return overall, len(fresh), in_team, len(team)

    def ahead(self, key: str, now: float) -> Held:
        """What the waiting requests before ``key`` want (priority first, then age, all teams)."""
        me = self._entries.get(key)
        if me is None:
            return Held()
        mine = (-me.rank, me.first_seen)
        return total(e.held for k, e in self._fresh(now) if k != key and (-e.rank, e.first_seen) < mine)

    def delay(self, key: str, *, longest: int) -> int:
        """Visibility delay: from a quarter of ``longest`` for the head of its team's order to
        ``longest`` for its tail (``shared.capacity.model.defer_delay``, ordered by priority first)."""
        found = self.position(key, self._entries[key].seen) if key in self._entries else None
        if found is None:
            return max(1, longest)
        _, _, place, total = found
        return max(1, math.ceil(longest * (0.25 + 0.75 * (place - 1) / max(1, total))))


def total(held: Iterable[Held]) -> Held:
    out = Held()
    for h in held:
        out = out.plus(h)
    return out
