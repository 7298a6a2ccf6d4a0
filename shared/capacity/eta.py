"""When may a waiting request start? (pure; shown in the ledger, the API and ``cli status``).

The estimate walks the running Jobs in the order they are expected to end — each at its start
plus the median duration observed of the app's finished Jobs (the reported ones the capacity
view lists), never later than its deadline (``activeDeadlineSeconds``); without observations,
at its deadline — and frees their cores and container groups until what the requests ahead of
this one want, plus its own demand, fits. It is a forecast, not a promise: requests that arrive
later with a higher priority, or of a team further below its share, go first.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.base.times import iso, parse_time
from shared.capacity.fairshare import Held
from shared.capacity.model import pod_cores
from shared.job.read import terminal_condition

Obj = dict[str, Any]


@dataclass(frozen=True)
class Ending:
    at: datetime
    frees: Held


def duration_of(job: Obj) -> float | None:
    """Seconds a finished Job ran (start to completion), or None."""
    status = job.get("status") or {}
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    if start is None or end is None:
        cond = terminal_condition(job)
        end = parse_time((cond or {}).get("lastTransitionTime"))
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds()


def endings(jobs: Iterable[Obj], *, now: datetime, durations: Iterable[float]) -> list[Ending]:
    """When each running Job is expected to end and what it then frees, soonest first."""
    observed = list(durations)
    typical = statistics.median(observed) if observed else None
    out: list[Ending] = []
    for job in jobs:
        if terminal_condition(job) is not None:
            continue
        spec, status = job.get("spec") or {}, job.get("status") or {}
        start = parse_time(status.get("startTime")) or parse_time((job.get("metadata") or {}).get("creationTimestamp"))
        if start is None:
            continue
        parallel = min(int(spec.get("parallelism") or 1), int(spec.get("completions") or 1))
        frees = Held(parallel * pod_cores(spec.get("template") or {}), parallel)
        deadline = spec.get("activeDeadlineSeconds")
        ends = [start + timedelta(seconds=float(deadline))] if deadline else []
        if typical is not None:
            ends.append(start + timedelta(seconds=typical))
        at = min(ends) if ends else now + timedelta(hours=1)
        out.append(Ending(max(at, now), frees))
    return sorted(out, key=lambda e: e.at)


def estimate(
    endings_: list[Ending], *, free: Held, ahead: Held, demand: Held, now: datetime, observed: int
) -> dict[str, Any]:
    """``estimatedStartAt`` and ``estimatedBy`` for a request behind ``ahead`` (what the waiting
    requests before it want), given what is ``free`` now."""
    need = ahead.plus(demand)
    freed = free
    how = (
        f"running Jobs end at their start + the median observed duration ({observed} finished Jobs), "
        "at the latest at their deadline"
        if observed
        else "running Jobs end at their deadline (no finished Job observed yet)"
    )
    if need.fits(freed):
        return {"estimatedStartAt": iso(now), "estimatedBy": "capacity is free now"}
    for ending in endings_:
        freed = freed.plus(ending.frees)
        if need.fits(freed):
            return {"estimatedStartAt": iso(ending.at), "estimatedBy": how}
    return {"estimatedBy": how + "; more is waiting ahead than the running Jobs free: no estimate yet"}
