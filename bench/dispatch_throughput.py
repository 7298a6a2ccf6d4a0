"""Dispatch throughput and latency: N pre-loaded requests → N Jobs, the app against its protocol floor.

Each phase gets a fresh Azurite (in memory, warmed up with 300 messages first) and a fresh
Kubernetes stand-in (HTTPS on loopback, in its own process), the same request bodies and the
same concurrency:

* app: the local host (devtools/host) with the shipped host.json (batchSize 16,
  newBatchThreshold 8, maxPollingInterval 2 s — never reached, the queue is never empty)
  sends each message as an ``InvocationRequest`` to the real worker runtime
  (azure-functions-runtime, in its worker process), whose ``dispatch`` function does: parse + validate, build the manifest, POST it with the
  Kubernetes adapter, delete the message. Timers are set not to fire (not what is measured).
* floor: a minimal loop with the same shape — one poller receiving batches of 16 with the
  same lease, 16 worker threads, the next batch when ≤ 8 are in flight — that only receives,
  POSTs the pre-rendered manifest of the same request (same bytes the app sends) with a
  plain urllib3 HTTPS pool, and deletes the message.

Figures (all wall clock, ``time.time``):
* throughput = N / (last Job created − consumer start);
* backlog latency of a request = its Job's create time in the stand-in − max(its enqueue
  time, consumer start): how long a pre-loaded request waited for its Job;
* per-message handling = function invocation duration (app, the host's measurement: request sent → response back)
  vs receive-done → delete-returned per message (floor);
* per-message CPU of the app alone: ``dispatch`` service called in a loop against a
  cluster that accepts every Job without I/O (``--cpu-loop``).

Usage: .venv/bin/python bench/dispatch_throughput.py [--requests 2000] [--rounds 1] [--profile out.html]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import (
    IMAGE,
    REPO,
    KubeProcess,
    app_settings,
    machine,
    percentile,
    process_cpu_seconds,
    quiet_logs,
)

BATCH = 16
NEW_BATCH_THRESHOLD = 8
LEASE_SECONDS = 600


def request_body(i: int, prefix: str) -> dict[str, Any]:
    """A realistic request: id, image, command, env, resources, labels, correlation id."""
    return {
        "id": f"{prefix}-{i:06d}",
        "image": IMAGE,
        "command": ["sh", "-c", "echo processing $ITEM"],
        "env": {"ITEM": str(i), "STAGE": "bench"},
        "cpu": "0.5",
        "memory": "1Gi",
        "labels": {"team": "perf"},
        "correlationId": f"corr-{i}",
    }


def preload(queue: Any, bodies: list[str], threads: int = 8) -> dict[int, float]:
    """Send every body; return index → wall time the send returned (the enqueue time)."""
    sent: dict[int, float] = {}

    def send(i: int) -> None:
        queue.send_message(bodies[i])
        sent[i] = time.time()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(len(bodies))))
    return sent


def wait_created(kube: KubeProcess, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while kube.created_count() < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {kube.created_count()} of {n} Jobs created after {timeout:g}s")
        time.sleep(0.05)


class CpuMeter:
    """CPU seconds spent by this process, Azurite and the stand-in between start() and stop()."""

    def __init__(self, azurite_pid: int, kube_pid: int, worker_pid: int | None = None) -> None:
        self.pids = {"azurite": azurite_pid, "stand-in": kube_pid}
        if worker_pid is not None:  # the app's worker process (the local host runs it apart)
            self.pids["worker"] = worker_pid
        self.begin: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        t = os.times()
        values = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        values["consumer"] = t.user + t.system
        return values

    def start(self) -> None:
        self.begin = self._now()

    def stop(self) -> None:
        end = self._now()
        self.used = {k: end[k] - self.begin[k] for k in end}


def summarise(
    label: str,
    kube: KubeProcess,
    names: list[str],
    sent: dict[int, float],
    start: float,
    handling: list[float],
    cpu: CpuMeter,
) -> dict[str, float]:
    created_at, _, _ = kube.state()
    created = [created_at[name] for name in names]
    elapsed = max(created) - start
    backlog = [(created[i] - max(sent[i], start)) * 1000 for i in range(len(names))]
    out = {
        "jobs_per_s": len(names) / elapsed,
        "elapsed_s": elapsed,
        "lat_p50_ms": percentile(backlog, 50),
        "lat_p95_ms": percentile(backlog, 95),
        "lat_p99_ms": percentile(backlog, 99),
        "handle_p50_ms": percentile(handling, 50),
        "handle_p95_ms": percentile(handling, 95),
        "handle_p99_ms": percentile(handling, 99),
    }
    print(
        f"  {label:<5} {out['jobs_per_s']:7.1f} Jobs/s  ({len(names)} in {elapsed:.2f} s)   "
        f"backlog latency p50/p95/p99 {out['lat_p50_ms']:.0f}/{out['lat_p95_ms']:.0f}/{out['lat_p99_ms']:.0f} ms   "
        f"per-message handling p50/p95/p99 {out['handle_p50_ms']:.1f}/{out['handle_p95_ms']:.1f}/"
        f"{out['handle_p99_ms']:.1f} ms",
        flush=True,
    )
    n = len(names)
    for k, v in cpu.used.items():
        out[f"cpu_{k}_ms_per_msg"] = v / n * 1000
    print(
        "        CPU per request: "
        + ", ".join(f"{k} {v / n * 1000:.2f} ms" for k, v in cpu.used.items())
        + f"  (sum {sum(cpu.used.values()) / elapsed:.2f} of 2 cores busy)",
        flush=True,
    )
    return out


def run_app(
    azurite: Any, workdir: Path, n: int, tag: str, profile: str | None = None, threads: int | None = None
) -> dict[str, float]:
    from devtools.host import LocalHost

    with KubeProcess(tick_seconds=0.5, pod_start_seconds=3600) as kube:
        kubeconfig = kube.write_kubeconfig(workdir / f"kubeconfig-{tag}")
        settings = app_settings(azurite.connection_string, kubeconfig, prefix=tag)
        if threads:  # the worker's thread pool for sync functions; default min(32, cpu + 4)
            settings["PYTHON_THREADPOOL_THREAD_COUNT"] = str(threads)
        service = azurite.queue_service()
        requests_q = service.get_queue_client(settings["VNB_REQUESTS_QUEUE"])
        requests_q.create_queue()
        bodies = [json.dumps(request_body(i, tag)) for i in range(n)]
        sent = preload(requests_q, bodies)
        handling: list[float] = []

        def on_invocation(name: str, outcome: str, seconds: float) -> None:
            if name == "dispatch":
                handling.append(seconds * 1000)

        # The app on the real worker runtime, in its worker process, driven by the local host.
        runner = LocalHost(
            REPO,
            settings=settings,
            host_json=REPO / "host.json",
            on_invocation=on_invocation,
            state_dir=workdir / f"timers-{tag}",
        )
        profiler = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005, async_mode="disabled")
            profiler.start()
        cpu = CpuMeter(azurite.pid, kube.pid, runner.worker.pid)
        cpu.start()
        start = time.time()
        runner.start()
        try:
            wait_created(kube, n, timeout=max(120.0, n / 5))
        finally:
            cpu.stop()
            if profiler is not None:
                profiler.stop()
            runner.stop()
        if profiler is not None and profile:
            Path(profile).write_text(profiler.output_html())
            print(profiler.output_text(unicode=True, color=False, show_all=False)[:6000])
        from shared.config.settings import Settings
        from shared.job.render import job_name

        app = Settings.from_env(settings)
        names = [job_name(f"{tag}-{i:06d}", settings=app) for i in range(n)]
        return summarise("app", kube, names, sent, start, handling, cpu)


def run_floor(azurite: Any, workdir: Path, n: int, tag: str, *, quiet: bool = False) -> dict[str, float]:
    import urllib3
    from azure.storage.queue import QueueClient

    from shared.config.settings import Settings
    from shared.intake.request import parse_request
    from shared.job.render import JobMeta, build_job, job_name

    with KubeProcess(tick_seconds=0.5, pod_start_seconds=3600) as kube:
        kubeconfig = kube.write_kubeconfig(workdir / f"kubeconfig-{tag}")
        env = app_settings(azurite.connection_string, kubeconfig, prefix=tag)
        settings = Settings.from_env(env)
        service = azurite.queue_service()
        requests_q = service.get_queue_client(env["VNB_REQUESTS_QUEUE"])
        requests_q.create_queue()
        raw = [request_body(i, tag) for i in range(n)]
        bodies = [json.dumps(b) for b in raw]
        # The same manifest bytes the app would POST for each request, rendered before the clock.
        now = datetime.now(UTC)
        manifests = {
            b["id"]: json.dumps(
                build_job(
                    parse_request(b, settings=settings),
                    JobMeta(key=b["id"], message_id="m", enqueued_at=now),
                    settings=settings,
                )
            ).encode()
            for b in raw
        }
        ca = workdir / f"ca-{tag}.pem"
        ca.write_bytes(kube.ca_pem)
        pool = urllib3.HTTPSConnectionPool("127.0.0.1", kube.port, maxsize=32, ca_certs=str(ca), assert_hostname=False)
        url = f"/apis/batch/v1/namespaces/{settings.namespace}/jobs"
        headers = {
            "Authorization": "Bearer standin-token",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        sent = preload(requests_q, bodies)
        handling: list[float] = []
        lock = threading.Condition()
        in_flight = [0]
        done = threading.Event()

        local = threading.local()

        def handle(m: Any) -> None:
            t0 = time.perf_counter()
            try:
                key = json.loads(m.content)["id"]
                r = pool.urlopen("POST", url, body=manifests[key], headers=headers, retries=False)
                if r.status not in (201, 409):
                    raise RuntimeError(f"POST {r.status}")
                # One storage client per worker thread, as the runner does: 16 threads sharing
                # one client overflow its 10-connection pool and churn TCP connections.
                client = getattr(local, "client", None)
                if client is None:
                    client = local.client = QueueClient.from_connection_string(
                        azurite.connection_string, env["VNB_REQUESTS_QUEUE"]
                    )
                client.delete_message(m.id, m.pop_receipt)
                handling.append((time.perf_counter() - t0) * 1000)
            finally:
                with lock:
                    in_flight[0] -= 1
                    lock.notify_all()

        workers = ThreadPoolExecutor(BATCH)

        def poll() -> None:
            while not done.is_set():
                with lock:
                    while in_flight[0] > NEW_BATCH_THRESHOLD:
                        lock.wait(0.5)
                batch = list(
                    requests_q.receive_messages(
                        messages_per_page=BATCH, max_messages=BATCH, visibility_timeout=LEASE_SECONDS
                    )
                )
                if not batch:
                    time.sleep(0.1)
                    continue
                for m in batch:
                    with lock:
                        in_flight[0] += 1
                    workers.submit(handle, m)

        from devtools.host import exported_settings

        cpu = CpuMeter(azurite.pid, kube.pid)
        # The app settings in os.environ, as the runner (and the Functions host) has them: the
        # storage SDK reads the whole environment for proxies on every request.
        with exported_settings(env):
            cpu.start()
            start = time.time()
            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            try:
                wait_created(kube, n, timeout=max(120.0, n / 5))
            finally:
                cpu.stop()
                done.set()
                poller.join(5)
                workers.shutdown(wait=True)
        names = [job_name(b["id"], settings=settings) for b in raw]
        if quiet:
            return {}
        return summarise("floor", kube, names, sent, start, handling, cpu)


def cpu_loop(n: int) -> tuple[float, float]:
    """µs of CPU per message for the dispatch service alone (no I/O: the cluster accepts every Job),
    and for the function wrapper (``runtime()`` + ``inbound()``) on top."""
    from azure.functions.queue import QueueMessage

    from functions.bindings import inbound
    from shared.adapters.kube import Cluster
    from shared.cluster.readiness import Readiness
    from shared.config.settings import Settings
    from shared.flows.dispatch import dispatch
    from shared.flows.inbound import Inbound
    from shared.flows.runtime import runtime

    class AcceptingCluster(Cluster):
        def __init__(self) -> None:
            self.namespace = "vnode-batch"

        def create_job(self, manifest: Any) -> dict[str, Any]:
            return {}

    class Gate:
        def __init__(self) -> None:
            self.cluster = AcceptingCluster()

        def check(self) -> Readiness:
            return Readiness(cluster=self.cluster)

    env = app_settings("UseDevelopmentStorage=true", Path("/nonexistent"), prefix="cpu")
    settings = Settings.from_env(env)
    gate = Gate()
    bodies = [json.dumps(request_body(i, "cpu")).encode() for i in range(n)]
    now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731
    for b in bodies[:50]:  # warm caches (regexes, pydantic)
        dispatch(Inbound("m", b), settings=settings, gate=gate, requeue=lambda t, d: None, now=now)
    t0 = time.process_time()
    for i, b in enumerate(bodies):
        dispatch(Inbound(f"m{i}", b), settings=settings, gate=gate, requeue=lambda t, d: None, now=now)
    service_us = (time.process_time() - t0) / n * 1e6

    old = dict(os.environ)
    os.environ.update(env)
    try:
        msgs = [QueueMessage(id=f"m{i}", body=b, dequeue_count=1) for i, b in enumerate(bodies)]  # type: ignore[no-untyped-call]
        runtime()
        t0 = time.process_time()
        for m in msgs:
            runtime()
            inbound(m)
        wrapper_us = (time.process_time() - t0) / n * 1e6
    finally:
        os.environ.clear()
        os.environ.update(old)
    return service_us, wrapper_us


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1, help="floor/app pairs, alternating; medians reported")
    parser.add_argument("--profile", help="write a pyinstrument HTML profile of the (last) app phase here")
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--threads", type=int, help="PYTHON_THREADPOOL_THREAD_COUNT for the app's worker")
    args = parser.parse_args(argv)
    quiet_logs()
    from devtools.azurite import Azurite

    print(f"dispatch throughput: {args.requests} pre-loaded requests, shipped host.json, {machine()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="vnb-bench-"))
    apps: list[dict[str, float]] = []
    floors: list[dict[str, float]] = []
    for r in range(args.rounds):
        # A fresh, warmed-up Azurite per phase: its per-request CPU depends on its history
        # (seen: 5x after a previous phase), which would bias whichever phase runs second.
        last = r == args.rounds - 1
        phases = [] if args.skip_floor else ["floor"]
        for phase in [*phases, "app"]:
            with Azurite(REPO) as azurite:
                run_floor(azurite, workdir, 300, f"warm{phase}{r}", quiet=True)
                if phase == "floor":
                    floors.append(run_floor(azurite, workdir, args.requests, f"floor{r}"))
                else:
                    apps.append(
                        run_app(
                            azurite,
                            workdir,
                            args.requests,
                            f"app{r}",
                            profile=args.profile if last else None,
                            threads=args.threads,
                        )
                    )
    service_us, wrapper_us = cpu_loop(2000)
    app_rate = statistics.median(a["jobs_per_s"] for a in apps)
    print(
        f"  app CPU per message (dispatch service, no I/O): {service_us:.0f} µs; function wrapper "
        f"(runtime() + inbound()): {wrapper_us:.1f} µs"
    )
    if floors:
        floor_rate = statistics.median(f["jobs_per_s"] for f in floors)
        print(
            f"  median over {args.rounds} round(s): app {app_rate:.1f} Jobs/s, floor {floor_rate:.1f} Jobs/s, "
            f"app/floor time ratio {floor_rate / app_rate:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
