"""Job finished → outcome event, on the shipped Azure configuration, and what the reporting costs.

The local host runs the app on the real worker runtime with the shipped host.json
(maxPollingInterval 2 s) and the Azure defaults of infra/main.bicep: reconcile timer
``*/30 * * * * *`` and follow-up passes every ``VNB_FOLLOWUP_SECONDS`` = 2 s while Jobs are in
flight (shared/flows/followup.py). Requests are sent at random intervals, each running
``sleep U(--min-run, --max-run)`` simulated seconds after a 0.5 s pod start (ACI's real 60–110 s
start is left out: it is not the app's latency, and it only makes the chain's phase at the
finish more random), so Jobs finish at random moments relative to the passes.

* t_finished: the first 10 ms poll of the stand-in that sees the Job finished (condition
  SuccessCriteriaMet or Complete: the first the reconciler reports on);
* t_event: the first 20 ms poll of the events queue that receives its ``job.succeeded``.

Printed: finished → event p50/p90/p99/max; enqueue → Job created median; then the executions of
each function (the host's invocation callback: count and billed duration, Flex Consumption's
``max(1 s, duration rounded up to 100 ms)`` per execution) while Jobs are in flight and during
an idle window after the last event, extrapolated to a month and priced with the Flex
Consumption on-demand meters (constants below, with their sources).

Usage: .venv/bin/python bench/latency.py [--samples 80] [--idle-window 60] [--schedule "*/30 * * * * *"]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import IMAGE, REPO, TimedKubeStandIn, app_settings, machine, quiet_logs
from shared.adapters.queues import queues_for
from shared.config.settings import Settings
from shared.flows.followup import chains_for
from shared.job.render import job_name

NS = "vnode-batch"
MONTH_S = 30 * 24 * 3600
# Flex Consumption on-demand meters (East US list prices, USD): execution time $0.000026 per GB-s
# and $0.40 per million executions (modal.com/blog/azure-function-pricing-guide, "Flex
# Consumption plan pricing"); monthly free grant per subscription: 100,000 GB-s and 250,000
# executions (azure.microsoft.com/pricing/details/functions, Flex Consumption). Billed: memory
# *provisioned* (the instance size) while an instance executes; "the minimum billable execution
# period for both execution modes is 1,000 ms. Past that, the billable activity period is rounded
# up to the nearest 100 ms" (learn.microsoft.com/azure/azure-functions/flex-consumption-plan
# "Billing"). Per execution is the upper bound: executions that overlap on one instance bill once.
PRICE_GB_S = 0.000026
PRICE_PER_MILLION = 0.40
FREE_GB_S = 100_000
FREE_EXECUTIONS = 250_000
INSTANCE_GB = 2.0  # infra/main.bicep instanceMemoryMB = 2048
SCHEDULES_TIMER_PER_MONTH = MONTH_S // 60  # VNB_SCHEDULES_TIMER every minute (infra default)


def billed_seconds(duration: float) -> float:
    return max(1.0, math.ceil(duration * 10 - 1e-9) / 10)


@dataclass
class Meter:
    """Invocations per function in a window (the host's ``on_invocation`` callback)."""

    window: str = "busy"
    runs: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, name: str, outcome: str, duration: float) -> None:
        if outcome in ("succeeded", "failed"):
            with self.lock:
                self.runs[(self.window, name)].append(duration)

    def of(self, window: str, name: str) -> list[float]:
        with self.lock:
            return list(self.runs.get((window, name), []))


def _finished(job: dict[str, Any] | None) -> bool:
    for c in ((job or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") in ("SuccessCriteriaMet", "Complete") and c.get("status") == "True":
            return True
    return False


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def run(args: argparse.Namespace) -> int:
    from devtools.azurite import Azurite
    from devtools.host import LocalHost

    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="vnb-latency-"))
    meter = Meter()
    with Azurite(REPO) as azurite, TimedKubeStandIn(pod_start_seconds=0.5) as kube:
        settings = app_settings(
            azurite.connection_string,
            kube.write_kubeconfig(workdir / "kc"),
            prefix="lat",
            reconcile_schedule=args.schedule,
            VNB_FOLLOWUP_SECONDS=str(args.followup),
        )
        app = Settings.from_env(settings)
        service = azurite.queue_service()
        requests_q = service.get_queue_client(app.requests_queue)
        events_q = service.get_queue_client(app.events_queue)
        for q in (requests_q, events_q, service.get_queue_client(app.followup_queue)):
            q.create_queue()
        enqueued: dict[str, float] = {}
        finished: dict[str, float] = {}
        delivered: dict[str, float] = {}
        names = {f"lat-{i}": job_name(f"lat-{i}", settings=app) for i in range(args.samples)}
        stop = threading.Event()

        def watch_jobs() -> None:
            while not stop.is_set():
                for key, name in names.items():
                    if key in enqueued and key not in finished and _finished(kube.job(NS, name)):
                        finished[key] = time.time()
                time.sleep(0.01)

        def watch_events() -> None:
            while not stop.is_set():
                for m in events_q.receive_messages(max_messages=32, visibility_timeout=30):
                    events_q.delete_message(m)
                    key = (json.loads(str(m.content)).get("data") or {}).get("requestKey")
                    delivered.setdefault(str(key), time.time())
                time.sleep(0.02)

        host = LocalHost(REPO, settings=settings, host_json=REPO / "host.json", state_dir=workdir / "timers")
        host.on_invocation = meter
        with host:
            watchers = [threading.Thread(target=f, daemon=True) for f in (watch_jobs, watch_events)]
            for t in watchers:
                t.start()
            busy_started = time.time()
            for key in names:
                run_s = rng.uniform(args.min_run, args.max_run)
                body = {"id": key, "image": IMAGE, "command": ["sh", "-c", f"sleep {run_s:.2f}"]}
                requests_q.send_message(json.dumps(body))
                enqueued[key] = time.time()
                time.sleep(rng.uniform(0.2, 2 * args.spacing - 0.2))
            deadline = time.time() + args.max_run + 120
            while len(delivered) < len(names) and time.time() < deadline:
                time.sleep(0.1)
            # The chain's last pass (the one that finds nothing left and ends it) belongs to the busy spell.
            chains = chains_for(app, queues_for(app))
            while (lease := chains.read()) is not None and lease.alive(datetime.now(UTC)):
                time.sleep(0.1)
            time.sleep(1.0)
            busy_seconds = time.time() - busy_started
            meter.window = "idle"
            time.sleep(args.idle_window)
            stop.set()
    lost = sorted(set(names) - set(delivered))
    lat = [delivered[k] - finished[k] for k in names if k in delivered and k in finished]
    created = [kube.created_at[n] - enqueued[k] for k, n in names.items() if n in kube.created_at]
    print(f"  {len(lat)} Jobs; {len(lost)} without an event {lost[:5]}")
    print(
        f"  Job finished → event: p50 {pct(lat, 50):.2f} s, p90 {pct(lat, 90):.2f} s, p99 {pct(lat, 99):.2f} s, "
        f"max {max(lat):.2f} s, mean {statistics.fmean(lat):.2f} s   (targets p50 ≤ 3 s, p99 ≤ 6 s)"
    )
    print(f"  enqueue → Job created: median {statistics.median(created):.2f} s (Jobs sent while others run)")
    report_cost(meter, args, busy_seconds)
    return 1 if lost else 0


def report_cost(meter: Meter, args: argparse.Namespace, busy_seconds: float) -> None:
    timer_period = float(args.schedule.split()[0].removeprefix("*/") or 30)
    print(f"  executions (busy window {busy_seconds:.0f} s with Jobs in flight; idle window {args.idle_window:.0f} s):")
    for window, seconds in (("busy", busy_seconds), ("idle", args.idle_window)):
        for name in ("reconcile", "reconcile_followup", "dispatch"):
            runs = meter.of(window, name)
            billed = sum(billed_seconds(d) for d in runs)
            print(
                f"    {window:4} {name:18} {len(runs):5} runs, {len(runs) / seconds * 3600:7.0f}/h, "
                f"mean {statistics.fmean(runs) if runs else 0:.3f} s, billed {billed:.1f} s"
            )
    idle_followups = len(meter.of("idle", "reconcile_followup"))
    timer = MONTH_S / timer_period
    idle_exec = timer + SCHEDULES_TIMER_PER_MONTH + idle_followups / args.idle_window * MONTH_S
    idle_gbs = idle_exec * 1.0 * INSTANCE_GB  # each idle run is far under 1 s: billed 1 s
    print(
        f"  idle month: reconcile timer {timer:,.0f} + schedules timer {SCHEDULES_TIMER_PER_MONTH:,} + "
        f"follow-ups {idle_followups / args.idle_window * MONTH_S:,.0f} = {idle_exec:,.0f} executions, "
        f"{idle_gbs:,.0f} GB-s at {INSTANCE_GB:g} GB → {money(idle_gbs, idle_exec)}"
    )
    busy = meter.of("busy", "reconcile_followup")
    per_hour = len(busy) / busy_seconds * 3600
    gbs_hour = sum(billed_seconds(d) for d in busy) / busy_seconds * 3600 * INSTANCE_GB
    print(
        f"  busy hour (≥ 1 Job in flight): +{per_hour:,.0f} follow-up executions, +{gbs_hour:,.0f} GB-s = "
        f"${gbs_hour * PRICE_GB_S + per_hour * PRICE_PER_MILLION / 1e6:.3f}/h beyond the free grant; "
        f"a month with Jobs in flight 8 h × 22 days adds {money(gbs_hour * 176, per_hour * 176, free=False)}, "
        f"24/7 adds {money(gbs_hour * 720, per_hour * 720, free=False)}"
    )
    plain = MONTH_S / 2
    print(
        f"  for comparison a plain */2 timer: {plain + SCHEDULES_TIMER_PER_MONTH:,.0f} executions a month, "
        f"idle or not → {money((plain + SCHEDULES_TIMER_PER_MONTH) * INSTANCE_GB, plain + SCHEDULES_TIMER_PER_MONTH)}"
    )


def money(gbs: float, executions: float, *, free: bool = True) -> str:
    g = max(0.0, gbs - (FREE_GB_S if free else 0))
    e = max(0.0, executions - (FREE_EXECUTIONS if free else 0))
    return f"${g * PRICE_GB_S + e * PRICE_PER_MILLION / 1e6:,.2f}/month" + (" after the free grant" if free else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=80)
    parser.add_argument("--spacing", type=float, default=1.5, help="mean seconds between requests")
    parser.add_argument("--min-run", type=float, default=2.0)
    parser.add_argument("--max-run", type=float, default=20.0)
    parser.add_argument("--idle-window", type=float, default=60.0)
    parser.add_argument("--schedule", default="*/30 * * * * *", help="VNB_RECONCILE_SCHEDULE (infra default)")
    parser.add_argument("--followup", type=int, default=2, help="VNB_FOLLOWUP_SECONDS (default)")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args(argv)
    quiet_logs()
    print(
        f"finished → event: reconcile {args.schedule!r}, follow-ups every {args.followup} s, shipped host.json, "
        f"{args.samples} Jobs, {machine()}",
        flush=True,
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
