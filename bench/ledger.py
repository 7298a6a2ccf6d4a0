"""What the request ledger costs: storage calls per request, dispatch throughput with and
without it, and the API's submit latency.

Everything runs against a fresh Azurite (queues + tables, in memory, loopback) and the
Kubernetes stand-in in its own process (HTTPS on loopback):

1. storage calls: N requests go through ``dispatch`` (the service the dispatch function calls)
   and reconcile passes until every Job is reported; a counting wrapper around the real table
   adapter counts reads, inserts, replaces and queries per request.
2. dispatch throughput: the same N pre-built messages handled by 16 threads (the host's
   batchSize) calling ``dispatch`` directly, once with ``ledger=None`` and once with the ledger,
   each against a fresh namespace of Jobs. The local runner cannot switch the ledger off (the
   function always passes it), so the service is driven directly; the queue's receive/delete
   calls, the same in both, are left out, which makes the relative cost an upper bound.
3. API submit: ``RequestsApi.submit`` (validate, ledger insert, enqueue) one at a time
   (latency percentiles), then 8 threads at once (requests/s), in this process.
4. API through HTTP on the local host: ``POST /api/requests`` with the function key to the
   host's loopback front end, which invokes the app's ``submit_request`` function in the real
   worker runtime (worker process): one caller (keep-alive) for latency percentiles, then 8
   callers for requests/s; ``GET /api/requests/{id}`` latency too. The queue and timer
   functions are disabled (``AzureWebJobs.<name>.Disabled``) so only the API is measured.

Usage: .venv/bin/python bench/ledger.py [--requests 200] [--only http]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import KubeProcess, app_settings, machine, percentile, quiet_logs
from devtools.azurite import Azurite
from shared.adapters.kube import Cluster, from_kubeconfig_file
from shared.adapters.queues import Queues
from shared.adapters.tables import EntityPage, Stored, Tables
from shared.cluster.readiness import Readiness
from shared.config.settings import Settings
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound
from shared.flows.reconcile import KubeJobs, reconcile
from shared.ledger.api import RequestsApi
from shared.ledger.store import Ledger

REPO = Path(__file__).resolve().parent.parent
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"


class Counting:
    """The real table adapter, counting each call by kind."""

    def __init__(self, inner: Tables) -> None:
        self.inner = inner
        self.calls: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def _count(self, kind: str) -> None:
        with self._lock:
            self.calls[kind] += 1

    def get(self, partition_key: str, row_key: str) -> Stored | None:
        self._count("get")
        return self.inner.get(partition_key, row_key)

    def insert(self, entity: Mapping[str, Any]) -> str:
        self._count("insert")
        return self.inner.insert(entity)

    def replace(self, entity: Mapping[str, Any], *, etag: str) -> str:
        self._count("replace")
        return self.inner.replace(entity, etag=etag)

    def delete(self, partition_key: str, row_key: str, *, etag: str) -> bool:
        self._count("delete")
        return self.inner.delete(partition_key, row_key, etag=etag)

    def query(self, query_filter: str, **kw: Any) -> EntityPage:
        self._count("query")
        return self.inner.query(query_filter, **kw)


class Gate:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def check(self) -> Readiness:
        return Readiness(cluster=self.cluster)


def messages(n: int, tag: str) -> list[Inbound]:
    return [
        Inbound(
            message_id=f"{tag}-m{i}",
            body=json.dumps({"id": f"{tag}-{i}", "image": IMAGE, "command": ["sh", "-c", "echo hi"]}).encode(),
            inserted_at=datetime.now(UTC),
        )
        for i in range(n)
    ]


def storage_calls(settings: Settings, cluster: Cluster, n: int) -> None:
    counting = Counting(Tables(settings))
    ledger = Ledger(counting)
    for m in messages(n, "calls"):
        dispatch(m, settings=settings, gate=Gate(cluster), requeue=lambda t, d: None, ledger=ledger)
    on_dispatch = dict(counting.calls)
    counting.calls.clear()
    reported = 0
    deadline = time.monotonic() + 120
    while reported < n and time.monotonic() < deadline:
        report = reconcile(
            settings=settings, jobs=KubeJobs(cluster), send_event=lambda t: None, ledger=ledger, sweep=False
        )
        reported += report.reported
        time.sleep(0.2)
    on_reconcile = dict(counting.calls)

    def per(calls: dict[str, int]) -> str:
        total = sum(calls.values())
        parts = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(calls.items()))
        return f"{total / n:.2f} ({parts})"

    print(f"  table calls per request, dispatch:  {per(on_dispatch)}")
    print(f"  table calls per request, reconcile: {per(on_reconcile)}  [{reported}/{n} reported]")
    both = collections.Counter(on_dispatch) + collections.Counter(on_reconcile)
    print(f"  table calls per request, total:     {per(dict(both))}")


def throughput(settings: Settings, kubeconfig: Path, n: int, *, with_ledger: bool, tag: str) -> float:
    ledger = Ledger(Tables(settings)) if with_ledger else None
    local = threading.local()

    def cluster() -> Cluster:
        if not hasattr(local, "c"):
            local.c = Cluster(from_kubeconfig_file(str(kubeconfig), context=None, timeout=10), settings.namespace)
        return local.c  # type: ignore[no-any-return]

    batch = messages(n, tag)
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda m: dispatch(
                    m, settings=settings, gate=Gate(cluster()), requeue=lambda t, d: None, ledger=ledger
                ),
                batch,
            )
        )
    return n / (time.perf_counter() - started)


def api_latency(settings: Settings, cluster: Cluster, n: int) -> None:
    queues = Queues(settings)
    queues.ensure(settings.requests_queue)
    api = RequestsApi(
        settings=settings,
        ledger=Ledger(Tables(settings)),
        enqueue=lambda text: queues.send(settings.requests_queue, text),
        send_event=queues.send_event,
        cluster=lambda: cluster,
    )
    body = {"image": IMAGE, "command": ["sh", "-c", "echo hi"], "labels": {"team": "bench"}}
    api.submit(json.dumps({**body, "id": "api-warm"}).encode())
    times = []
    for i in range(n):
        data = json.dumps({**body, "id": f"api-{i}"}).encode()
        t0 = time.perf_counter()
        response = api.submit(data)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status == 202, response.body
    print(
        f"  API submit → 202, one at a time: p50 {percentile(times, 50):.1f} ms, p95 {percentile(times, 95):.1f} ms, "
        f"mean {statistics.mean(times):.1f} ms (validate + 1 table insert + 1 queue send)"
    )
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: api.submit(json.dumps({**body, "id": f"apic-{i}"}).encode()), range(n)))
    print(f"  API submit, 8 concurrent callers: {n / (time.perf_counter() - started):.0f} requests/s")


def table_cpu(settings: Settings, n: int) -> None:
    """Client CPU (this process only; Azurite is another process) per ledger write, sequential."""
    from shared.ledger.records import State, new_record

    ledger = Ledger(Tables(settings))
    now = datetime.now(UTC)
    run = f"{time.time_ns()}"
    ledger.create(new_record(f"cpu-warm-{run}", State.RECEIVED, now))
    keys = [f"cpu-{run}-{i}" for i in range(n)]
    t0 = time.process_time()
    records = [ledger.create(new_record(k, State.RECEIVED, now))[0] for k in keys]
    t1 = time.process_time()
    for r in records:
        ledger.move(r.key, State.SUBMITTED, now, job_name="vnb-x", known=r)
    t2 = time.process_time()
    print(
        f"  client CPU per call, one at a time: insert {(t1 - t0) / n * 1000:.2f} ms, "
        f"conditional replace {(t2 - t1) / n * 1000:.2f} ms"
    )


def api_http(env: dict[str, str], n: int) -> None:
    import requests

    from devtools.host import LocalHost

    off = {f"AzureWebJobs.{name}.Disabled": "true" for name in ("dispatch", "deadletter", "reconcile", "schedules")}
    with (
        tempfile.TemporaryDirectory() as state,
        LocalHost(
            REPO, settings={**env, **off}, host_json=REPO / "host.json", state_dir=Path(state), http_port=0
        ) as host,
    ):
        url = f"{host.http_url}/api/requests"
        headers = {"x-functions-key": host.function_keys["default"], "content-type": "application/json"}
        body = {"image": IMAGE, "command": ["sh", "-c", "echo hi"], "labels": {"team": "bench"}}
        session = requests.Session()
        for i in range(10):  # warm-up: the worker's first invocations import and connect
            session.post(url, data=json.dumps({**body, "id": f"http-warm-{i}"}), headers=headers).raise_for_status()
        times, reads = [], []
        for i in range(n):
            data = json.dumps({**body, "id": f"http-{i}"})
            t0 = time.perf_counter()
            r = session.post(url, data=data, headers=headers)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 202, r.text
        for i in range(n):
            t0 = time.perf_counter()
            r = session.get(f"{url}/http-{i}", headers=headers)
            reads.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text
        print(
            f"  POST /api/requests → 202, one caller: p50 {percentile(times, 50):.1f} ms, "
            f"p95 {percentile(times, 95):.1f} ms, mean {statistics.mean(times):.1f} ms"
        )
        print(
            f"  GET /api/requests/{{id}} → 200, one caller: p50 {percentile(reads, 50):.1f} ms, "
            f"p95 {percentile(reads, 95):.1f} ms"
        )
        local = threading.local()

        def post(i: int) -> int:
            if not hasattr(local, "s"):
                local.s = requests.Session()
            return int(local.s.post(url, data=json.dumps({**body, "id": f"httpc-{i}"}), headers=headers).status_code)

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(post, range(n)))
        rate = n / (time.perf_counter() - started)
        assert set(codes) == {202}, collections.Counter(codes)
        print(f"  POST /api/requests, 8 concurrent callers: {rate:.0f} requests/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--only", choices=["http", "cpu"], help="run only the HTTP section (4) or the CPU one (5)")
    args = parser.parse_args()
    quiet_logs()
    n = args.requests
    print(f"bench/ledger.py: {n} requests, {machine()}")
    with tempfile.TemporaryDirectory() as tmp, Azurite(REPO) as azurite, KubeProcess(pod_start_seconds=0.05) as kube:
        kubeconfig = kube.write_kubeconfig(Path(tmp) / "kubeconfig")
        env = app_settings(azurite.connection_string, kubeconfig, prefix="ledger", VNB_KEEP_FINISHED_SECONDS="0")
        settings = Settings.from_env(env)
        cluster = Cluster(from_kubeconfig_file(str(kubeconfig), context=None, timeout=10), settings.namespace)
        if args.only == "cpu":
            print("5. table client CPU")
            for _ in range(3):
                table_cpu(settings, n)
            return 0
        if args.only == "http":
            print("4. API through HTTP on the local host (real runtime, worker process)")
            api_http(env, n)
            return 0
        print("1. storage calls the ledger adds")
        storage_calls(settings, cluster, min(n, 100))
        print("2. dispatch throughput, 16 threads calling the dispatch service")
        for round_ in range(2):
            without = throughput(settings, kubeconfig, n, with_ledger=False, tag=f"off{round_}")
            with_ = throughput(settings, kubeconfig, n, with_ledger=True, tag=f"on{round_}")
            print(
                f"  round {round_ + 1}: without ledger {without:.1f} Jobs/s, with ledger {with_:.1f} Jobs/s "
                f"({with_ / without:.0%} of it)"
            )
        print("3. API service submit")
        api_latency(settings, cluster, n)
        print("4. API through HTTP on the local host (real runtime, worker process)")
        api_http(env, n)
        print("5. table client CPU")
        table_cpu(settings, n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
