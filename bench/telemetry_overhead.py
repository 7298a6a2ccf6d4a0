"""Telemetry overhead on the dispatch path: CPU per request with telemetry off vs on (issue 21).

Two paths, each with its modes alternated in short blocks (their order turning each block) in
one run, so a machine shared with other work slows every mode alike; the totals and the median
of the per-block ratios to the neighbouring "off" block are printed.

* I/O-free: the dispatch service in a loop, each request creating one Job against a cluster that
  accepts every Job without I/O and the in-memory ledger table of the model tests
  (``tests/model/world.py`` ``MemTable``: insert-if-absent, ETags), so what is measured is the
  app's own CPU, the smallest denominator telemetry can be compared with.
* real: the same service with the ledger in Azurite's table service and the Jobs created in the
  Kubernetes stand-in over HTTPS on loopback (its own process), through the app's adapters: a
  request's CPU in this process then includes the Azure Tables and Kubernetes clients, as it does
  in the worker. The Jobs of a block are deleted before the next (outside the measured time).

Modes:

* off — VNB_TELEMETRY=off: ``shared.telemetry.signals`` is never enabled (every call returns at
  once; the app imports no ``opentelemetry`` module);
* simple (I/O-free only) — the SDK's defaults (exemplars sampled) with a ``SimpleSpanProcessor``
  and an ``InMemoryMetricReader``: every span is exported in the request's thread, the worst case;
* batch — the providers ``shared.adapters.telemetry.providers`` builds for ``console``/``otlp``
  (``BatchSpanProcessor``, exemplars off), with an exporter that drops what it gets (an
  ``InMemorySpanExporter`` keeps every span, and the growing heap makes the garbage collector's
  passes, not telemetry, the cost measured);
* distro (real path only) — batch plus what the Azure Monitor distro (``VNB_TELEMETRY=azuremonitor``)
  turns on by default inside a dispatch: Azure SDK spans and the requests and urllib3
  instrumentations, 5 more spans per request here (2 table calls, each an SDK and an HTTP span,
  and the Kubernetes POST); the exporter is still one that drops what it gets.

CPU is the process's (``time.process_time``: every thread, so the batch processor's export thread
counts too), per request, after a warm-up. The target (issue 21): at most 10 % more CPU per
request than off; docs/performance.md says which path it is judged on.

Usage: .venv/bin/python bench/telemetry_overhead.py [--requests 3000] [--block 100]
       [--real-requests 1000] [--real-block 50]    (0 requests: skip that path)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import REPO, app_settings, machine, quiet_logs
from bench.dispatch_throughput import request_body

ROOMY = dict.fromkeys(
    (
        "VNB_CAPACITY_CONTAINER_GROUPS",
        "VNB_CAPACITY_CORES",
        "VNB_CAPACITY_CREATES_PER_5MIN",
        "VNB_CAPACITY_CREATES_PER_HOUR",
    ),
    "1000000",
)
"""A capacity budget no run reaches: admission always admits (what is measured is dispatch)."""


def _dispatcher(settings: Any, gate: Any, holder: dict[str, Any]) -> Callable[[bytes, str], Any]:
    """One request through the dispatch service, with the ledger and admission in ``holder``."""
    from shared.flows.dispatch import dispatch
    from shared.flows.inbound import Inbound

    now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731

    def one(body: bytes, message_id: str) -> Any:
        inbound = Inbound(message_id, body, inserted_at=now())
        return dispatch(
            inbound,
            settings=settings,
            gate=gate,
            requeue=lambda t, d: None,
            now=now,
            ledger=holder["ledger"],
            admission=holder["admission"],
        )

    return one


def _setup() -> tuple[Callable[[bytes, str], Any], Callable[[], None]]:
    """A dispatch call over no I/O, and a reset of the ledger between phases."""
    from shared.adapters.kube import Cluster, Page
    from shared.capacity.admission import Admission
    from shared.cluster.readiness import Readiness
    from shared.config.settings import Settings
    from shared.ledger.store import Ledger
    from tests.model.world import MemTable

    class AcceptingCluster(Cluster):
        def __init__(self) -> None:
            self.namespace = "vnode-batch"

        def create_job(self, manifest: Any) -> dict[str, Any]:
            return {}

        def list_jobs(self, *, label_selector: str, limit: int, continue_token: str | None = None) -> Page:
            return Page(items=[], continue_token=None)

        def list_pods(self, *, label_selector: str) -> list[dict[str, Any]]:
            return []

    class Gate:
        def __init__(self) -> None:
            self.cluster = AcceptingCluster()

        def check(self) -> Readiness:
            return Readiness(cluster=self.cluster)

    env = app_settings("UseDevelopmentStorage=true", Path("/nonexistent"), prefix="tel")
    env.update(ROOMY)
    # Lists every time (they return nothing: no I/O): with a long cache, admission's charges for
    # Jobs no list ever shows would pile up and make each request slower than the one before.
    env["VNB_CAPACITY_CACHE_SECONDS"] = "0.000001"
    settings = Settings.from_env(env)
    gate = Gate()
    holder: dict[str, Any] = {"ledger": Ledger(MemTable()), "admission": Admission(settings)}
    one = _dispatcher(settings, gate, holder)

    def reset() -> None:
        holder["ledger"] = Ledger(MemTable())
        holder["admission"] = Admission(settings)

    return one, reset


def _setup_real(connection: str, kubeconfig: Path) -> tuple[Callable[[bytes, str], Any], Callable[[], None]]:
    """The dispatch service as the app runs it: the ledger in Azurite's table service and the
    Jobs created in the Kubernetes stand-in (HTTPS on loopback, its own process), through the
    app's own adapters (azure-data-tables, the kubernetes client). This process's CPU then holds
    the SDK calls and their HTTP clients too, not Azurite's nor the stand-in's (other processes)."""
    from shared.adapters.kube import Cluster, from_kubeconfig_file
    from shared.adapters.tables import Tables
    from shared.base.conventions import MANAGED_BY, MANAGER
    from shared.capacity.admission import Admission
    from shared.cluster.readiness import Readiness
    from shared.config.settings import Settings
    from shared.ledger.store import Ledger

    env = app_settings(connection, kubeconfig, prefix="telreal", VNB_KEEP_FINISHED_SECONDS="0")
    env.update(ROOMY)
    settings = Settings.from_env(env)
    cluster = Cluster(from_kubeconfig_file(str(kubeconfig), context=None, timeout=10), settings.namespace)

    class Gate:
        def check(self) -> Readiness:
            return Readiness(cluster=cluster)

    holder: dict[str, Any] = {"ledger": Ledger(Tables(settings)), "admission": Admission(settings)}
    one = _dispatcher(settings, Gate(), holder)

    def reset() -> None:
        # The Jobs of the block before are deleted (outside the measured time), so admission's
        # lists stay as short in the last block as in the first: modes compare like with like.
        # Request ids differ per block: the ledger's rows may stay.
        page = cluster.list_jobs(label_selector=f"{MANAGED_BY}={MANAGER}", limit=1000)
        for job in page.items:
            cluster.delete_job(job["metadata"]["name"], propagation="Background")
        holder["admission"] = Admission(settings)

    return one, reset


def _enable(mode: str) -> Callable[[], None]:
    """Turn telemetry on as ``mode`` says; returns how to turn it off again."""
    from shared.telemetry import signals

    if mode == "off":
        return lambda: None
    if mode == "distro":
        return _enable_distro()
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Dropping(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    if mode == "batch":  # exactly what shared.adapters.telemetry runs for console/otlp
        from shared.adapters.telemetry import providers

        reader = InMemoryMetricReader()
        meter_provider, tracer_provider = providers([reader], Dropping())
        signals.enable(meter_provider, tracer_provider)
    else:  # the SDK's defaults (exemplars sampled inside spans) and export in the request's thread
        tracer_provider = TracerProvider()
        reader = InMemoryMetricReader()
        tracer_provider.add_span_processor(SimpleSpanProcessor(Dropping()))
        signals.enable(MeterProvider(metric_readers=[reader]), tracer_provider)

    def off() -> None:
        reader.collect()
        tracer_provider.shutdown()
        signals.disable()

    return off


_GLOBAL: list[Any] = []


def _enable_distro() -> Callable[[], None]:
    """batch, plus what the Azure Monitor distro turns on by default that runs inside a dispatch
    (azure-monitor-opentelemetry ``_configure.py``: ``settings.tracing_implementation =
    OpenTelemetrySpan`` for the Azure SDKs, and every ``opentelemetry_instrumentor`` entry point
    of its supported libraries: here requests, which azure-core's transport uses, and urllib3,
    which the kubernetes client uses). Their spans go to the global providers, which can be set
    once per process: one pair, kept across blocks; only the instrumentation is switched."""
    from azure.core.settings import settings as azure_settings
    from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from shared.adapters.telemetry import providers
    from shared.telemetry import signals

    class Dropping(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    if not _GLOBAL:
        reader = InMemoryMetricReader()
        meter_provider, tracer_provider = providers([reader], Dropping())
        metrics.set_meter_provider(meter_provider)
        trace.set_tracer_provider(tracer_provider)
        _GLOBAL.extend([reader, meter_provider, tracer_provider])
    reader, meter_provider, tracer_provider = _GLOBAL
    signals.enable(meter_provider, tracer_provider)
    azure_settings.tracing_implementation = OpenTelemetrySpan
    instrumentors = [RequestsInstrumentor(), URLLib3Instrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument()

    def off() -> None:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        azure_settings.tracing_implementation.unset_value()
        reader.collect()
        signals.disable()

    return off


def measure(mode: str, n: int, one: Callable[[bytes, str], Any], reset: Callable[[], None], tag: str) -> float:
    """Seconds of process CPU for ``n`` requests in ``mode`` (after a short warm-up)."""
    off = _enable(mode)
    try:
        reset()
        warm = [json.dumps(request_body(i, f"warm{tag}")).encode() for i in range(20)]
        for i, body in enumerate(warm):
            one(body, f"w{i}")
        bodies = [json.dumps(request_body(i, tag)).encode() for i in range(n)]
        reset()
        gc.collect()
        t0 = time.process_time()
        for i, body in enumerate(bodies):
            result = one(body, f"m{i}")
            assert result.outcome.value == "created", result.detail
        return time.process_time() - t0
    finally:
        off()


def alternate(
    modes: Sequence[str],
    requests: int,
    block: int,
    one: Callable[[bytes, str], Any],
    reset: Callable[[], None],
    tag: str,
) -> tuple[dict[str, float], dict[str, list[float]], int]:
    """Run ``modes`` in turns of ``block`` requests (their order turning each block), so a machine
    shared with other work slows every mode alike: CPU seconds per mode, each block's ratio of a
    mode to the "off" block beside it, and the requests per mode."""
    cpu = dict.fromkeys(modes, 0.0)
    ratios: dict[str, list[float]] = {m: [] for m in modes[1:]}
    blocks = max(1, requests // block)
    for b in range(blocks):
        k = b % len(modes)
        order = [*modes[k:], *modes[:k]]
        seconds = {mode: measure(mode, block, one, reset, f"{tag}{mode}{b}") for mode in order}
        for mode in modes:
            cpu[mode] += seconds[mode]
        for mode in modes[1:]:
            ratios[mode].append(seconds[mode] / seconds["off"])
    return cpu, ratios, blocks * block


def report(title: str, modes: Sequence[str], cpu: dict[str, float], ratios: dict[str, list[float]], n: int) -> None:
    base = cpu["off"] / n * 1e6
    print(title)
    print(f"  off:     {base:8.1f} µs CPU/request")
    for mode in modes[1:]:
        value = cpu[mode] / n * 1e6
        median_ratio = statistics.median(ratios[mode])
        print(
            f"  {mode + ':':<8} {value:8.1f} µs CPU/request  (+{(value - base) / base * 100:.1f} % over off; "
            f"median of {len(ratios[mode])} block ratios +{(median_ratio - 1) * 100:.1f} %)",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000, help="requests per mode (I/O-free path)")
    parser.add_argument("--block", type=int, default=100, help="requests per block; modes alternate by block")
    parser.add_argument("--real-requests", type=int, default=1000, help="requests per mode on the real path (0: skip)")
    parser.add_argument("--real-block", type=int, default=50, help="requests per block on the real path")
    args = parser.parse_args(argv)
    quiet_logs()
    print(f"telemetry overhead on dispatch, {machine()}, load average {os.getloadavg()[0]:.2f}", flush=True)
    if args.requests > 0:
        one, reset = _setup()
        modes = ("off", "simple", "batch")
        cpu, ratios, n = alternate(modes, args.requests, args.block, one, reset, "free")
        report(
            f"I/O-free path ({n} requests per mode, in-memory ledger, a cluster that accepts every Job):",
            modes,
            cpu,
            ratios,
            n,
        )
    if args.real_requests > 0:
        from bench._harness import KubeProcess
        from devtools.azurite import Azurite
        from devtools.standins.virtual_node.provider import AciSettings
        from devtools.standins.virtual_node.quotas import QuotaSettings

        # ACI's quotas out of the way: a refused pod would add the capacity module's work to some
        # blocks and not others (not what is measured here).
        many = 1_000_000
        unlimited = AciSettings(
            quotas=QuotaSettings(
                container_groups=many, standard_cores=many, creates_per_5_minutes=many, creates_per_hour=many
            )
        )
        with (
            tempfile.TemporaryDirectory() as tmp,
            Azurite(REPO) as azurite,
            KubeProcess(pod_start_seconds=0.05, aci=unlimited) as kube,
        ):
            kubeconfig = kube.write_kubeconfig(Path(tmp) / "kubeconfig")
            one, reset = _setup_real(azurite.connection_string, kubeconfig)
            modes = ("off", "batch", "distro")
            measure("off", args.real_block, one, reset, "realwarm")  # the clients' pools, Azurite's table
            cpu, ratios, n = alternate(modes, args.real_requests, args.real_block, one, reset, "real")
            report(
                f"real path ({n} requests per mode, ledger in Azurite, Jobs created in the Kubernetes stand-in over HTTPS):",
                modes,
                cpu,
                ratios,
                n,
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
