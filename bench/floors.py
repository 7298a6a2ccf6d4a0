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


@dataclass(frozen=True)
class Burst:
    """One request of a burst: ``pods`` container groups of ``cores`` each, started together and
    held ``seconds`` (ACI's start included); each group is one create."""

    pods: int
    cores: float
    seconds: float


def greedy_windowed(
    burst: Sequence[Burst], *, cores: float, groups: int, windows: Sequence[tuple[float, int]]
) -> float:
    """Makespan of an ideal instant first-fit dispatcher, in the given order, under the cores and
    container-groups quotas *and* ACI's sliding create windows (``windows``: (seconds, creates
    allowed in any span that long), e.g. ((300, 100), (3600, 300))). A request starts the moment
    its groups, cores and creates all fit; the next moment to look is the next end or the next
    create leaving a window. The yardstick for create-rate-bound bursts: a window slides, so an
    hour can only repeat the spread of the hour before it, which a floor packing each hour's
    creates into its first minutes ignores."""
    waiting = list(burst)
    running: list[tuple[float, float, int]] = []  # (ends at, cores, groups)
    created: list[float] = []
    free_cores, free_groups, now, end = cores, groups, 0.0, 0.0
    while waiting or running:
        counts = [sum(1 for c in created if c > now - span) for span, _ in windows]
        kept = []
        for item in waiting:
            fits = item.pods * item.cores <= free_cores + 1e-9 and item.pods <= free_groups
            if fits and all(n + item.pods <= limit for n, (_, limit) in zip(counts, windows, strict=True)):
                free_cores -= item.pods * item.cores
                free_groups -= item.pods
                heapq.heappush(running, (now + item.seconds, item.pods * item.cores, item.pods))
                created.extend([now] * item.pods)
                counts = [n + item.pods for n in counts]
                end = max(end, now + item.seconds)
            else:
                kept.append(item)
        waiting = kept
        frees = [c + span for span, _ in windows for c in created if c + span > now]
        nxt = min([running[0][0] if running else float("inf"), *(frees if waiting else [])])
        if nxt == float("inf"):
            raise ValueError("a request needs more than the quotas allow")
        now = nxt
        while running and running[0][0] <= now + 1e-9:
            _, c, g = heapq.heappop(running)
            free_cores += c
            free_groups += g
        horizon = now - max(span for span, _ in windows)
        created = [c for c in created if c > horizon]
    return end
