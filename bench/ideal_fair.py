"""The admission rules alone, without the app's latency: what fair share itself costs.

An event simulation of ``bench/fairshare.py``'s workload in which, the instant anything changes
(a Job ends, a request arrives), the app's own pure picking rule —
``shared.capacity.wake.choose``, which follows admission's order and ``fairshare.refusal`` —
starts every request it picks. Each request holds its cores through ACI's start and its run, as
in the stand-in. No queue, no reconcile pass, no cache: what this run leaves idle is the rule's
doing (reservations for a team below its share that cannot use them yet), not the host's.

Reported with ``bench.fairshare.report``, so its lines read as the real run's do.

Usage: .venv/bin/python bench/ideal_fair.py [--per-team 400] [--seed 1] [--mode fairshare|fcfs]
"""

from __future__ import annotations

import argparse
import heapq
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.capacity import ACI_START_SECONDS
from bench.fairshare import (
    BORROW,
    QUOTA_CORES,
    SHARES,
    Request,
    Samples,
    caps_of,
    items_of,
    plan,
    references_of,
    report,
    teams_doc,
)
from bench.floors import lower_bound
from shared.capacity.fairshare import Held, Share
from shared.capacity.teamview import shares_of, total
from shared.capacity.wake import Sleeper, Standing, choose
from shared.teams.model import parse

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def shares(borrow: int = BORROW) -> dict[str, Share]:
    """The real run's shares: its teams file, read by the app's own parser."""
    return shares_of(parse(teams_doc(borrow)))


def simulate(
    requests: list[Request], urgent: Request, urgent_at: float, *, teams_on: bool, step: float, borrow: int = BORROW
) -> tuple[dict[str, float], Samples, float]:
    """(sent, samples, makespan): ``sent`` and ``samples`` as the real bench records them."""
    everyone = [*requests, urgent]
    arrival = {r.key: 0.0 for r in requests} | {urgent.key: urgent_at}
    order = {r.key: i for i, r in enumerate(everyone)}
    by_key = {r.key: r for r in everyone}
    table = shares(borrow) if teams_on else {}
    waiting = [r.key for r in requests]
    running: list[tuple[float, str]] = []  # (ends at, key)
    starts: dict[str, float] = {}
    now = 0.0
    while waiting or running or urgent.key not in starts:
        if urgent.key not in starts and urgent.key not in waiting and urgent_at <= now:
            waiting.append(urgent.key)
        held: dict[str, Held] = {}
        for _, key in running:
            r = by_key[key]
            held[r.team] = held.get(r.team, Held()).plus(Held(Decimal(str(r.cpu)), 1))
        used = total(held.values())
        standing = Standing(used, Held(Decimal(QUOTA_CORES), QUOTA_CORES), 10**9, held if teams_on else {})
        sleepers = [
            Sleeper(
                key,
                by_key[key].team if teams_on else None,
                "urgent" if by_key[key].urgent and teams_on else "normal",
                EPOCH + timedelta(seconds=arrival[key], microseconds=order[key]),
                Held(Decimal(str(by_key[key].cpu)), 1),
            )
            for key in waiting
        ]
        for pick in choose(sleepers, standing, table):
            starts[pick.key] = now
            waiting.remove(pick.key)
            heapq.heappush(running, (now + ACI_START_SECONDS + by_key[pick.key].seconds, pick.key))
        nxt = [running[0][0]] if running else []
        if urgent.key not in starts and urgent_at > now:
            nxt.append(urgent_at)
        if not nxt:
            break
        now = min(nxt)
        while running and running[0][0] <= now:
            heapq.heappop(running)
    makespan = max(starts[k] + ACI_START_SECONDS + by_key[k].seconds for k in starts)
    samples = Samples()
    t = 0.0
    while t <= makespan:
        cores = dict.fromkeys(SHARES, 0.0)
        for key, s in starts.items():
            if s <= t < s + ACI_START_SECONDS + by_key[key].seconds:
                cores[by_key[key].team] += by_key[key].cpu
        samples.times.append(t)
        samples.held.append(cores)
        t += step
    for key, s in starts.items():
        samples.started[key] = s  # the bench records a start at the first sample holding it
    return arrival, samples, makespan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--per-team", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample", type=float, default=10.0, help="simulated seconds between samples")
    parser.add_argument("--mode", choices=("fairshare", "fcfs"), action="append")
    parser.add_argument("--borrow", type=int, default=BORROW, help="each team's borrowing limit (60+: none binds)")
    args = parser.parse_args(argv)
    for mode in args.mode or ("fairshare", "fcfs"):
        teams_on = mode == "fairshare"
        requests, urgent = plan(args.per_team, args.seed, teams_on=teams_on)
        core_seconds = sum(r.cpu * r.seconds for r in [*requests, urgent])
        urgent_at = core_seconds / QUOTA_CORES / 4
        floor, _, _ = lower_bound(items_of(requests, urgent, urgent_at), quota=QUOTA_CORES)
        sent, samples, makespan = simulate(
            requests, urgent, urgent_at, teams_on=teams_on, step=args.sample, borrow=args.borrow
        )
        outcome = {r.key: "job.succeeded" for r in [*requests, urgent]}
        print(
            report(
                f"ideal {mode}",
                requests,
                urgent,
                sent,
                outcome,
                samples,
                {},
                makespan=makespan,
                floor=floor,
                step=args.sample,
                references=references_of(requests, urgent, urgent_at),
                caps=caps_of(args.borrow) if teams_on else None,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
