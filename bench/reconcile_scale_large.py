"""Reconcile at scale, with other people's Jobs in the namespace: does the cost follow the
Jobs the app has not reported yet, and only them?

Extends ``bench/reconcile_scale.py`` (same seeding, same call counting, the stand-in in its own
process): each case seeds U *unrelated* finished Jobs (another manager's label, one pod each)
next to R finished, unreported Jobs of the app (90 % succeeded, 10 % failed), then runs one
reconcile pass (the service the timer calls; 8 workers; page size 200; events to a counting
sink; VNB_KEEP_FINISHED_SECONDS=0, so each reported Job is deleted; no sweep). Reported per
pass: Kubernetes API calls, wall time, and the peak RSS of this process during the pass
(VmHWM, reset through /proc/self/clear_refs just before it: the reconciler's own memory,
the stand-in being another process).

Default cases: R = U = 1,000 / 10,000 / 50,000, and U = 50,000 with R = 100.

Usage: .venv/bin/python bench/reconcile_scale_large.py [--cases 1000:1000 10000:10000 50000:50000 100:50000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import KubeProcess, app_settings, machine, quiet_logs
from bench.reconcile_scale import NS, Sink, calls, seed
from shared.adapters.kube import Cluster, from_kubeconfig_file
from shared.config.settings import Settings
from shared.flows.reconcile import KubeJobs, reconcile


def _vm(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def run_case(unreported: int, unrelated: int, page_size: int) -> str:
    with KubeProcess(pod_start_seconds=0.05, tick_seconds=1.0) as kube, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = kube.write_kubeconfig(Path(tmp) / "kubeconfig")
        env = app_settings(
            "UseDevelopmentStorage=true",
            kubeconfig,
            prefix="rsl",
            VNB_KEEP_FINISHED_SECONDS="0",
            VNB_RECONCILE_PAGE_SIZE=str(page_size),
        )
        settings = Settings.from_env(env)
        t0 = time.perf_counter()
        if unrelated:
            kube.call(
                "seed_finished_jobs",
                namespace=NS,
                count=unrelated,
                labels={"app.kubernetes.io/managed-by": "someone-else", "team": "data"},
                annotations=None,
                succeeded=True,
                name_prefix="other",
            )
        seed(kube, unreported)
        seeded = time.perf_counter() - t0
        jobs = KubeJobs(Cluster(from_kubeconfig_file(str(kubeconfig), context=None, timeout=60), NS))
        send = Sink()
        kube.call("reset_metrics")
        rss_before = _vm("VmRSS")
        _reset_peak()
        started = time.perf_counter()
        report = reconcile(settings=settings, jobs=jobs, send_event=send, workers=8, sweep=False)
        wall = time.perf_counter() - started
        peak = _vm("VmHWM")
        counts = calls(kube)
        total = sum(counts.values())
        breakdown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        return (
            f"  {unreported:>6} unreported + {unrelated:>6} unrelated: {wall:7.2f} s, {report.reported:>6} reported, "
            f"{total:>6} API calls ({total / max(unreported, 1):.2f} per unreported Job), "
            f"peak RSS {peak:6.1f} MB (+{peak - rss_before:5.1f} over the {rss_before:.0f} MB before the pass); "
            f"events {send.count}; seeding took {seeded:.1f} s"
            + (f"; aborted: {report.aborted}" if report.aborted else "")
            + f"\n      calls: {breakdown}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["1000:1000", "10000:10000", "50000:50000", "100:50000"],
        help="UNREPORTED:UNRELATED pairs",
    )
    parser.add_argument("--page-size", type=int, default=200)
    args = parser.parse_args(argv)
    quiet_logs()
    print(f"reconcile_scale_large on {machine()}; one pass per case, keep=0, 8 workers, page size {args.page_size}")
    for case in args.cases:
        unreported, unrelated = (int(x) for x in case.split(":"))
        print(run_case(unreported, unrelated, args.page_size), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
