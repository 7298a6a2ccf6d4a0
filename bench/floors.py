"""What no scheduler can beat, and what an ideal one gets, on one quota (the benchmarks' yardsticks).

* :func:`lower_bound` — a floor no schedule can go under, counting what the platform costs every
  schedule: a container group holds its cores from its create through ACI's start time
  (``ACI_START_SECONDS`` in the stand-in) and the run, so the core-seconds are
  ``cpu × (start + seconds)``; and no schedule ends before its longest item can, from its arrival.
* :func:`greedy` — the makespan of an ideal instant dispatcher: an event simulation in which,
  whenever cores free, every waiting item that fits starts at once (first fit, in the given
  order, so smaller items fill what a larger one leaves). It knows nothing of run times in
  submission order; in longest-first order it is the classic LPT rule, which a clairvoyant
  scheduler could use. Each is a *schedule*, so the best schedule is at most as long: the gap
  between the lower bound and these is the tail no admission rule can win without preemption
  (Jobs of up to 1,800 s started near the end run alone on an idling quota).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    """One container group's worth of work: its cores, how long it holds them, when it can start."""

    cores: float
    seconds: float
    arrival: float = 0.0


def lower_bound(items: Sequence[Item], *, quota: float) -> tuple[float, float, float]:
    """(floor, core-seconds ÷ quota, latest arrival + longest hold) in seconds."""
    by_cores = sum(i.cores * i.seconds for i in items) / quota
    by_longest = max((i.arrival + i.seconds for i in items), default=0.0)
    return max(by_cores, by_longest), by_cores, by_longest


def greedy(items: Iterable[Item], *, quota: float) -> float:
    """Makespan of first-fit list scheduling in the order given (module docstring)."""
    waiting = list(items)
    running: list[tuple[float, float]] = []  # (ends at, cores)
    free, now, end = quota, 0.0, 0.0
    while waiting or running:
        kept = []
        for item in waiting:
            if item.arrival <= now and item.cores <= free + 1e-9:
                free -= item.cores
                heapq.heappush(running, (now + item.seconds, item.cores))
                end = max(end, now + item.seconds)
            else:
                kept.append(item)
        waiting = kept
        arrivals = [i.arrival for i in waiting if i.arrival > now]
        next_end = running[0][0] if running else float("inf")
        nxt = min([next_end, *arrivals])
        if nxt == float("inf"):
            raise ValueError("an item needs more cores than the quota")
        now = nxt
        while running and running[0][0] <= now + 1e-9:
            free += heapq.heappop(running)[1]
    return end
