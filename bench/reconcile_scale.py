"""Reconcile at scale: Kubernetes API calls and wall time of one pass over N finished Jobs.

The Kubernetes stand-in runs in its own process (HTTPS on loopback) and is seeded with N
finished, unreported Jobs of the app (90 % succeeded, 10 % failed, one terminated pod each).
One reconcile pass (the service the timer calls, 8 workers, VNB_RECONCILE_PAGE_SIZE) then
reports every Job. Events go to a counting sink by default — this measures the reconciler
and the API, not the queue — or to Azurite with ``--azurite``.

Two cleanup modes, as the setting allows:
* VNB_KEEP_FINISHED_SECONDS=0: the Job is deleted (Background) right after it is reported;
* VNB_KEEP_FINISHED_SECONDS=3600 (the default): its pods are deleted, the Job is kept for the
  idempotency window and swept later.

After the pass, a second pass over the same cluster (everything reported, N reported Jobs
still kept in the second mode) shows the steady-state cost: it does not grow with the Jobs
already reported. The sweep (which does list the kept Jobs) runs at most every
max(60 s, keep/10) in the app; it is measured on its own.

Usage: .venv/bin/python bench/reconcile_scale.py [--counts 1000 10000] [--azurite]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import REPO, KubeProcess, app_settings, machine, quiet_logs
from shared.adapters.kube import Cluster, from_kubeconfig_file
from shared.base.conventions import LABEL_STATE, MANAGED_BY, MANAGER, STATE_UNREPORTED
from shared.config.settings import Settings
from shared.flows.reconcile import KubeJobs, reconcile
from shared.flows.reconcile_pass import ReconcileReport

NS = "vnode-batch"


class Sink:
    """Counts events (and their bytes) instead of sending them."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def __call__(self, text: str) -> str:
        with self._lock:
            self.count += 1
            self.bytes += len(text.encode())
            return str(self.count)


def seed(kube: KubeProcess, n: int) -> None:
    labels = {MANAGED_BY: MANAGER, LABEL_STATE: STATE_UNREPORTED}
    failed = n // 10
    for prefix, count, ok in (("ok", n - failed, True), ("bad", failed, False)):
        annotations = {"vnode-batch.io/key": f"{prefix}-key", "vnode-batch.io/enqueued-at": "2026-11-27T00:00:00Z"}
        kube.call(
            "seed_finished_jobs",
            namespace=NS,
            count=count,
            labels=labels,
            annotations=annotations,
            succeeded=ok,
            name_prefix=prefix,
        )


def calls(kube: KubeProcess) -> collections.Counter[str]:
    out: collections.Counter[str] = collections.Counter()
    for (method, template), n in kube.request_counts().items():
        out[
            f"{method} {template.replace('/apis/batch/v1/namespaces/{ns}', '').replace('/api/v1/namespaces/{ns}', '')}"
        ] += n
    return out


def run_once(n: int, keep: int, *, azurite: Any | None, workers: int, page_size: int) -> list[str]:
    lines: list[str] = []
    with KubeProcess(pod_start_seconds=0.05) as kube, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = kube.write_kubeconfig(Path(tmp) / "kubeconfig")
        connection = azurite.connection_string if azurite is not None else "UseDevelopmentStorage=true"
        env = app_settings(
            connection,
            kubeconfig,
            prefix=f"rs{n}k{keep}",
            VNB_KEEP_FINISHED_SECONDS=str(keep),
            VNB_RECONCILE_PAGE_SIZE=str(page_size),
        )
        settings = Settings.from_env(env)
        if azurite is not None:
            from shared.adapters.queues import Queues

            queues = Queues(settings)
            queues.ensure(settings.events_queue)
            send: Any = queues.send_event
        else:
            send = Sink()
        seed(kube, n)
        jobs = KubeJobs(Cluster(from_kubeconfig_file(str(kubeconfig), context=None, timeout=30), NS))
        kube.call("reset_metrics")

        started = time.perf_counter()
        report = reconcile(settings=settings, jobs=jobs, send_event=send, workers=workers, sweep=False)
        wall = time.perf_counter() - started
        first = calls(kube)
        lines.append(_row(n, keep, "first pass", report, wall, first))

        kube.call("reset_metrics")
        started = time.perf_counter()
        report = reconcile(settings=settings, jobs=jobs, send_event=send, workers=workers, sweep=False)
        lines.append(_row(n, keep, "next pass", report, time.perf_counter() - started, calls(kube)))

        kube.call("reset_metrics")
        started = time.perf_counter()
        report = reconcile(settings=settings, jobs=jobs, send_event=send, workers=workers, sweep=True)
        sweep_calls = calls(kube)
        lines.append(_row(n, keep, "pass + sweep", report, time.perf_counter() - started, sweep_calls))
        breakdown = ", ".join(f"{k}: {v}" for k, v in sorted(first.items()))
        lines.append(f"      first pass calls: {breakdown}")
        if isinstance(send, Sink):
            lines.append(f"      events: {send.count}, {send.bytes / max(send.count, 1):.0f} bytes each on average")
    return lines


def _row(n: int, keep: int, what: str, report: ReconcileReport, wall: float, counts: collections.Counter[str]) -> str:
    total = sum(counts.values())
    per_job = total / n if n else 0.0
    rate = report.reported / wall if wall > 0 else 0.0
    return (
        f"{n:>6} {keep:>5} {what:<13} {wall:8.2f} s {report.reported:>6} reported {rate:8.0f} Jobs/s "
        f"{total:>7} API calls ({per_job:.2f}/Job) swept {report.swept}"
        + (f" aborted: {report.aborted}" if report.aborted else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--keep", type=int, nargs="+", default=[0, 3600], help="VNB_KEEP_FINISHED_SECONDS values")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--page-size", type=int, default=200)
    parser.add_argument("--azurite", action="store_true", help="send the events to a real Azurite queue")
    args = parser.parse_args()
    quiet_logs()
    print(
        f"reconcile_scale on {machine()}; stand-in in its own process; workers={args.workers}, page size={args.page_size}"
    )
    print(f"{'Jobs':>6} {'keep':>5} {'pass':<13} {'wall':>10} {'':>15} {'':>14} API calls")
    azurite = None
    if args.azurite:
        from devtools.azurite import Azurite

        azurite = Azurite(REPO).start()
    try:
        for n in args.counts:
            for keep in args.keep:
                for line in run_once(n, keep, azurite=azurite, workers=args.workers, page_size=args.page_size):
                    print(line, flush=True)
    finally:
        if azurite is not None:
            azurite.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
