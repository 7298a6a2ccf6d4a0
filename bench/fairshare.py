"""Fair-share benchmark: three teams flood one subscription's ACI quota; who gets it?

What runs: Azurite, the HTTPS Kubernetes stand-in with its model of the virtual node and ACI
on default quotas (100 container groups, 100 cores, 100 creates per 5 minutes, 300 per hour),
time-scaled (``--scale 0.05``: one simulated second is 50 ms; at 0.01 the app's own dispatch
throughput on a 2-core machine, not the quota, sets how often a waiting request asks again —
every ~1,000 simulated seconds — and both modes lose a third of the quota to it), and the app's own functions in
the local runner (dispatch + the reconcile timer every second), as in ``bench/capacity.py``.

The workload (``--seed``): teams ``a``, ``b`` and ``c`` with shares 50/30/20 of the cores
(weights 5/3/2, each may borrow 40 beyond its share). All three flood the queue at once,
``a`` first (``--per-team`` requests each; ``c`` sends a quarter as many, so it goes idle
midway and its share is borrowed). Each request takes 1 vCPU (half), 2 (three in ten) or 4
(one in five) for 600-1800 simulated seconds. A quarter into the quota-bound floor, team ``b``
sends one ``urgent`` request.

Two modes:
* ``fairshare``: the app with a teams file (VNB_TEAMS_FILE) and ``team``/``priority`` on each
  request;
* ``fcfs``: no teams file and no team fields — first come, first served, as the app was before
  issue 22 (run it on main for the baseline: the requests carry their team as a label only).

Measured from the stand-in, sampled every ``--sample`` simulated seconds: cores each team's
container groups hold; a team *waits* while it has a request sent whose first pod holds no
group yet, and is *backlogged* while what it holds plus what it waits for reaches its target
share (only then is it owed that share: a team with one small request left is not deprived of
its 50 cores). Printed: each team's share of the core-seconds while all three teams are
backlogged, and
while only ``a`` and ``b`` wait and are backlogged (``c`` idle: their split of what ``c`` leaves, targets 62.5/37.5
by weight), the quota's
utilisation while any team waits, the urgent request's wait against the median wait, ACI's
capacity refusals and capacity failures, and the makespan against the quota-bound floor
(core-seconds ÷ 100 cores).

Usage: .venv/bin/python bench/fairshare.py [--per-team 400] [--seed 1] [--scale 0.05] [--mode fcfs]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import IMAGE, REPO, TimedKubeStandIn, app_settings, quiet_logs
from bench.capacity import ACI_START_SECONDS, HOST, scaled_overrides
from bench.floors import Item, greedy, lower_bound

QUOTA_CORES = 100
SHARES = {"a": 50, "b": 30, "c": 20}
BORROW = 40
"""Each team may hold its share + 40: ``c`` idle leaves 20 to split, a burst takes at most 90."""
KEY_ANNOTATION = "vnode-batch.io/key"
IDLE_C_TARGETS = {"a": 62.5, "b": 37.5}
"""With ``c`` idle, ``a`` and ``b`` split its 20 cores by weight (5:3): 62.5 and 37.5 cores."""


@dataclass
class Request:
    key: str
    team: str
    body: dict[str, Any]
    cpu: float
    seconds: float
    urgent: bool = False


def plan(per_team: int, seed: int, *, teams_on: bool) -> tuple[list[Request], Request]:
    rng = random.Random(seed)
    out: list[Request] = []
    for team, n in (("a", per_team), ("b", per_team), ("c", max(1, per_team // 4))):
        for i in range(n):
            out.append(_request(rng, f"fs-{seed}-{team}-{i:04d}", team, teams_on=teams_on))
    urgent = _request(rng, f"fs-{seed}-b-urgent", "b", teams_on=teams_on, urgent=True)
    return out, urgent


def _request(rng: random.Random, key: str, team: str, *, teams_on: bool, urgent: bool = False) -> Request:
    seconds = float(rng.randint(600, 1800))
    r = rng.random()
    cpu = 1.0 if r < 0.5 else 2.0 if r < 0.8 else 4.0
    body: dict[str, Any] = {
        "id": key,
        "image": IMAGE,
        "command": ["sh", "-c", f"sleep {seconds:.0f}"],
        "cpu": f"{cpu:g}",
        "memory": "1G",
        "labels": {"bench-team": team},
    }
    if teams_on:
        body["team"] = team
        if urgent:
            body["priority"] = "urgent"
    return Request(key, team, body, cpu, seconds, urgent)


def teams_doc(borrow: int = BORROW) -> dict[str, Any]:
    """The bench's teams file (VNB_TEAMS_FILE's format), each team may borrow ``borrow``."""
    teams = [
        {
            "name": name,
            "members": {"functionKeys": [hashlib.sha256(f"bench-key-{name}".encode()).hexdigest()]},
            "nominal": {"cores": share, "containerGroups": share},
            "borrowingLimit": {"cores": borrow, "containerGroups": borrow},
            "weight": share // 10,
            "priorities": ["normal", "urgent"],
            "registries": ["mcr.microsoft.com"],
        }
        for name, share in SHARES.items()
    ]
    return {"version": 1, "teams": teams}


def teams_file(path: Path, borrow: int = BORROW) -> Path:
    path.write_text(json.dumps(teams_doc(borrow), indent=2))
    return path


@dataclass
class Samples:
    """What the sampler saw: per sample (simulated seconds since start) the cores each team held
    and the teams waiting; per key the first moment one of its pods held a container group."""

    times: list[float] = field(default_factory=list)
    held: list[dict[str, float]] = field(default_factory=list)
    started: dict[str, float] = field(default_factory=dict)


def sample(kube: TimedKubeStandIn, samples: Samples, t: float) -> None:
    from shared.capacity.model import pod_cores

    held = dict.fromkeys(SHARES, 0.0)
    for pod in kube.pods():
        meta = pod.get("metadata") or {}
        team = (meta.get("labels") or {}).get("bench-team")
        if team not in held or not kube.aci.has_group(str(meta.get("namespace")), str(meta.get("name"))):
            continue
        held[team] += float(pod_cores(pod))
        key = str((meta.get("annotations") or {}).get(KEY_ANNOTATION) or "")
        samples.started.setdefault(key, t)
    samples.times.append(t)
    samples.held.append(held)


def run(
    mode: str,
    requests: list[Request],
    urgent: Request,
    *,
    scale: float,
    floor: float,
    urgent_at: float,
    step: float,
    borrow: int = BORROW,
) -> str:
    from devtools.azurite import Azurite
    from devtools.host import LocalHost
    from devtools.standins.virtual_node.provider import AciSettings

    workdir = Path(tempfile.mkdtemp(prefix="vnb-fairshare-"))
    overrides = {
        **scaled_overrides(scale),
        "VNB_CAPACITY_MAX_WAIT_SECONDS": str(max(600, round(4 * floor * scale))),
    }
    if mode == "fairshare":
        overrides["VNB_TEAMS_FILE"] = str(teams_file(workdir / "teams.json", borrow))
    sent: dict[str, float] = {}
    outcome: dict[str, str] = {}
    samples = Samples()
    with (
        Azurite(REPO, persist_dir=workdir / "azurite") as azurite,
        TimedKubeStandIn(time_scale=scale, aci=AciSettings(start_seconds=ACI_START_SECONDS)) as kube,
    ):
        settings = app_settings(
            azurite.connection_string,
            kube.write_kubeconfig(workdir / "kubeconfig"),
            prefix=f"fs{mode[:4]}",
            reconcile_schedule="*/1 * * * * *",
            **overrides,
        )
        service = azurite.queue_service()
        requests_q = service.get_queue_client(settings["VNB_REQUESTS_QUEUE"])
        events_q = service.get_queue_client(settings["VNB_EVENTS_QUEUE"])
        requests_q.create_queue()
        events_q.create_queue()
        runner = LocalHost(REPO, settings=settings, host_json=HOST, state_dir=workdir / "timers")
        runner.start()
        stop = threading.Event()
        started = time.monotonic()

        def sim() -> float:
            return (time.monotonic() - started) / scale

        def sampler() -> None:
            while not stop.is_set():
                sample(kube, samples, sim())
                stop.wait(step * scale)

        thread = threading.Thread(target=sampler, daemon=True)
        last_event = 0.0
        try:
            for r in requests:
                sent[r.key] = sim()
                requests_q.send_message(json.dumps(r.body))
            thread.start()
            urgent_sent = False
            deadline = time.monotonic() + max(900.0, 6 * floor * scale)
            total = len(requests) + 1
            while len(outcome) < total and time.monotonic() < deadline:
                if not urgent_sent and sim() >= urgent_at:
                    sent[urgent.key] = sim()
                    requests_q.send_message(json.dumps(urgent.body))
                    urgent_sent = True
                got = False
                for m in events_q.receive_messages(max_messages=32, visibility_timeout=30):
                    got = True
                    events_q.delete_message(m)
                    event = json.loads(str(m.content))
                    data = event.get("data") or {}
                    key = str(data.get("requestKey") or data.get("key") or "")
                    if key and key not in outcome:
                        outcome[key] = ".".join(str(event.get("type", "")).rsplit(".", 2)[-2:]) + (
                            f":{data.get('reason')}" if data.get("reason") else ""
                        )
                        last_event = sim()
                if not got:
                    time.sleep(0.05)
        finally:
            stop.set()
            thread.join(5)
            runner.stop()
        refused = dict(kube.aci.counters.creates_refused)
    return report(
        mode,
        requests,
        urgent,
        sent,
        outcome,
        samples,
        refused,
        makespan=last_event,
        floor=floor,
        step=step,
        references=references_of(requests, urgent, urgent_at),
        caps=caps_of(borrow) if mode == "fairshare" else None,
    )


def caps_of(borrow: float) -> dict[str, float]:
    """The most each team may hold under the bench's teams file."""
    return {team: float(min(QUOTA_CORES, share + borrow)) for team, share in SHARES.items()}


def items_of(requests: list[Request], urgent: Request, urgent_at: float) -> list[Item]:
    """The workload as the floors see it: each request holds its cores through ACI's start and its
    run; all are sent at once but the urgent one (``bench.floors``)."""
    out = [Item(r.cpu, ACI_START_SECONDS + r.seconds) for r in requests]
    return [*out, Item(urgent.cpu, ACI_START_SECONDS + urgent.seconds, urgent_at)]


def references_of(requests: list[Request], urgent: Request, urgent_at: float) -> dict[str, float]:
    """Makespans of two ideal instant dispatchers on the same quota (``bench.floors.greedy``)."""
    items = items_of(requests, urgent, urgent_at)
    return {
        "an ideal instant first-come-first-served dispatcher": greedy(items, quota=QUOTA_CORES),
        "an ideal clairvoyant longest-first dispatcher": greedy(
            sorted(items, key=lambda i: -i.cores * i.seconds), quota=QUOTA_CORES
        ),
    }


def backlogged(targets: dict[str, float], held: dict[str, float], wanted: dict[str, float]) -> bool:
    """Each team of ``targets`` holds plus waits for at least its target cores (it can use its share)."""
    return all(held[team] + wanted[team] >= share for team, share in targets.items())


@dataclass
class Measures:
    """What ``report`` prints, as numbers: core-seconds by phase and team, and the quota's use
    while any team waits (core-seconds: ``busy`` the quota's, ``used`` held, ``idle_fits`` idle
    while a waiting request would fit within its team's limit, ``beyond`` what the waiting teams'
    borrowing limits keep them from)."""

    phases: dict[str, dict[str, float]]
    busy: float = 0.0
    used: float = 0.0
    idle_fits: float = 0.0
    beyond: float = 0.0

    def shares(self, phase: str) -> dict[str, float]:
        """Each team's percentage of the phase's core-seconds (``c`` left out while it is idle)."""
        seconds = {t: s for t, s in self.phases[phase].items() if phase == ALL_WAIT or t != "c"}
        whole = sum(seconds.values())
        return {t: 100 * s / whole for t, s in seconds.items()} if whole else {}


ALL_WAIT = "all three wait"
C_IDLE = "c idle, a and b wait"


def measure(
    everyone: list[Request], sent: dict[str, float], samples: Samples, *, step: float, caps: dict[str, float] | None
) -> Measures:
    """Shares while the teams are backlogged and the quota's use while any team waits (module
    docstring); ``caps`` as in :func:`report`."""
    out = Measures({ALL_WAIT: {}, C_IDLE: {}})
    for t, held in zip(samples.times, samples.held, strict=True):
        queued = [
            r for r in everyone if r.key in sent and sent[r.key] <= t and samples.started.get(r.key, float("inf")) > t
        ]
        waiting = {r.team for r in queued}
        wanted = {team: sum(r.cpu for r in queued if r.team == team) for team in SHARES}
        if waiting:
            out.busy += QUOTA_CORES * step
            out.used += sum(held.values()) * step
            free = QUOTA_CORES - sum(held.values())
            usable = QUOTA_CORES
            if caps is not None:  # what the teams may hold: their limits if they wait, else what they hold
                usable = min(usable, sum(max(h, caps[tm]) if tm in waiting else h for tm, h in held.items()))
            out.beyond += (QUOTA_CORES - usable) * step
            room = free - (QUOTA_CORES - usable)
            if any(r.cpu <= room and held[r.team] + r.cpu <= (caps or {}).get(r.team, QUOTA_CORES) for r in queued):
                out.idle_fits += room * step  # idle although a waiting request would fit, within its limit
        # A share is owed to a team only while it can use it: what it holds plus what it waits for
        # reaches its target (a team with one request left waiting is not deprived of 60 cores).
        phase = (
            ALL_WAIT
            if waiting == set(SHARES) and backlogged({t: float(v) for t, v in SHARES.items()}, held, wanted)
            else C_IDLE
            if waiting == {"a", "b"} and backlogged(IDLE_C_TARGETS, held, wanted)
            else None
        )
        if phase:
            for team, cores in held.items():
                out.phases[phase][team] = out.phases[phase].get(team, 0.0) + cores * step
    return out


def report(
    mode: str,
    requests: list[Request],
    urgent: Request,
    sent: dict[str, float],
    outcome: dict[str, str],
    samples: Samples,
    refused: dict[str, int],
    *,
    makespan: float,
    floor: float,
    step: float,
    references: dict[str, float] | None = None,
    caps: dict[str, float] | None = None,
) -> str:
    """``caps``: by team, the most it may hold (nominal share + borrowing limit; None: no teams
    file, no limit). Quota a waiting team may not take because of its own limit is idle by the
    teams file, not by admission: it is reported apart, and utilisation is also given of what the
    waiting teams may use."""
    references = references or {}
    everyone = [*requests, urgent]
    by_team = {t: [r for r in everyone if r.team == t] for t in SHARES}
    lines = [f"[{mode}]"]
    m = measure(everyone, sent, samples, step=step, caps=caps)
    for phase in (ALL_WAIT, C_IDLE):
        shares = m.shares(phase)
        if not shares:
            lines.append(f"  {phase}: never")
            continue
        # c idle: what a and b hold of what c leaves, by weight 62.5/37.5
        targets = SHARES if phase == ALL_WAIT else IDLE_C_TARGETS
        parts = ", ".join(f"{team} {pct:.1f} % (target {targets[team]:g} %)" for team, pct in sorted(shares.items()))
        total = sum(s for t, s in m.phases[phase].items() if phase == ALL_WAIT or t != "c")
        lines.append(f"  share of core-seconds while {phase} ({total / QUOTA_CORES:,.0f} s at full quota): {parts}")
    busy, used, idle_fits, beyond = m.busy, m.used, m.idle_fits, m.beyond
    if busy:
        lines.append(
            f"  quota utilisation while any team waits: {100 * used / busy:.1f} %; idle while a waiting request "
            f"would fit: {100 * idle_fits / busy:.1f} %, beyond the waiting teams' borrowing limits: "
            f"{100 * beyond / busy:.1f} %, idle while none fits: {100 * (busy - used - idle_fits - beyond) / busy:.1f} %"
        )
        if beyond:
            lines.append(
                f"  utilisation of what the waiting teams may hold (the quota less what their limits keep them "
                f"from): {100 * used / (busy - beyond):.1f} %"
            )
    else:
        lines.append("  nobody waited")
    waits = [samples.started[r.key] - sent[r.key] for r in requests if r.key in samples.started]
    urgent_wait = samples.started.get(urgent.key, float("nan")) - sent.get(urgent.key, float("nan"))
    median = statistics.median(waits) if waits else float("nan")
    lines.append(f"  urgent request waited {urgent_wait:,.0f} s; median wait {median:,.0f} s (simulated)")
    per_team_median = ", ".join(
        f"{team} {statistics.median(w):,.0f} s"
        for team, rs in by_team.items()
        if (w := [samples.started[r.key] - sent[r.key] for r in rs if r.key in samples.started])
    )
    lines.append(f"  median wait per team: {per_team_median}")
    kinds: dict[str, int] = {}
    for r in everyone:
        kind = outcome.get(r.key, "no outcome")
        kinds[kind] = kinds.get(kind, 0) + 1
    capacity_failures = sum(n for k, n in kinds.items() if "Capacity" in k or "ProviderFailed" in k)
    lines.append(f"  outcomes: {kinds}; capacity failures {capacity_failures}; ACI refused creates {refused or 0}")
    lines.append(f"  makespan {makespan:,.0f} s simulated = {makespan / floor:.3f} × the quota-bound floor")
    for name, ideal in references.items():
        lines.append(f"    = {makespan / ideal:.3f} × {name} ({ideal:,.0f} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--per-team", type=int, default=400, help="requests of a and of b (c sends a quarter)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=float, default=0.05, help="wall seconds per simulated second")
    parser.add_argument("--sample", type=float, default=10.0, help="simulated seconds between samples")
    parser.add_argument("--mode", choices=("fairshare", "fcfs"), action="append")
    parser.add_argument(
        "--borrow", type=int, default=BORROW, help="each team's borrowing limit, cores and groups (60+: none binds)"
    )
    args = parser.parse_args(argv)
    quiet_logs()
    logging.getLogger("vnode_batch").setLevel(logging.ERROR)
    for mode in args.mode or ("fairshare", "fcfs"):
        requests, urgent = plan(args.per_team, args.seed, teams_on=mode == "fairshare")
        everyone = [*requests, urgent]
        core_seconds = sum(r.cpu * r.seconds for r in everyone)
        urgent_at = core_seconds / QUOTA_CORES / 4  # a quarter into the run
        floor, by_cores, by_longest = lower_bound(items_of(requests, urgent, urgent_at), quota=QUOTA_CORES)
        counts = {t: sum(1 for r in everyone if r.team == t) for t in SHARES}
        print(
            f"fairshare: {len(everyone)} requests {counts}, {core_seconds:,.0f} core-seconds of runs; quota-bound "
            f"floor {floor:,.0f} s simulated (core-seconds held, ACI's {ACI_START_SECONDS:g} s start included, "
            f"÷ {QUOTA_CORES} cores: {by_cores:,.0f} s; longest request from its arrival: {by_longest:,.0f} s); "
            f"time scale {args.scale}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        print(
            run(
                mode,
                requests,
                urgent,
                scale=args.scale,
                floor=floor,
                urgent_at=urgent_at,
                step=args.sample,
                borrow=args.borrow,
            )
        )
        print(f"  load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
