"""Telemetry overhead on the dispatch path: CPU per request with telemetry off vs on (issue 21).

The dispatch service runs in a loop on the same request bodies, each creating one Job, against
a cluster that accepts every Job without I/O and the in-memory ledger table of the model tests
(``tests/model/world.py`` ``MemTable``: insert-if-absent, ETags), so what is measured is the app's
own CPU, which is what telemetry adds to. Phases, alternated over ``--rounds`` (medians printed):

* off — VNB_TELEMETRY=off: ``shared.telemetry.signals`` is never enabled (every call returns at
  once; ``opentelemetry`` is not imported by the app);
* simple — the OpenTelemetry SDK with a ``SimpleSpanProcessor`` and an ``InMemoryMetricReader``:
  every span (receive, create) and metric point of each request is built and handed to the
  exporter in the request's thread, the worst case for the request's CPU. The exporter drops
  what it gets: an ``InMemorySpanExporter`` keeps every span, and the growing heap makes the
  garbage collector's passes, not telemetry, the cost measured;
* batch — the SDK as ``shared.adapters.telemetry`` sets it up for ``console``/``otlp``: a
  ``BatchSpanProcessor`` (export off the request's thread) with the same dropping exporter.

CPU is the process's (``time.process_time``: every thread, so the batch processor's export thread
counts too) over ``--requests`` requests after a warm-up, per request. The target (issue 21): at
most 10 % more CPU per request than off.

Usage: .venv/bin/python bench/telemetry_overhead.py [--requests 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import app_settings, machine, quiet_logs
from bench.dispatch_throughput import request_body


def _setup() -> tuple[Callable[[bytes, str], Any], Callable[[], None]]:
    """A dispatch call over no I/O, and a reset of the ledger between phases."""
    from shared.adapters.kube import Cluster, Page
    from shared.capacity.admission import Admission
    from shared.cluster.readiness import Readiness
    from shared.config.settings import Settings
    from shared.flows.dispatch import dispatch
    from shared.flows.inbound import Inbound
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
    env["VNB_CAPACITY_CONTAINER_GROUPS"] = "1000000"
    env["VNB_CAPACITY_CORES"] = "1000000"
    env["VNB_CAPACITY_CREATES_PER_5MIN"] = "1000000"
    env["VNB_CAPACITY_CREATES_PER_HOUR"] = "1000000"
    # Lists every time (they return nothing: no I/O): with a long cache, admission's charges for
    # Jobs no list ever shows would pile up and make each request slower than the one before.
    env["VNB_CAPACITY_CACHE_SECONDS"] = "0.000001"
    settings = Settings.from_env(env)
    gate = Gate()
    holder: dict[str, Any] = {"ledger": Ledger(MemTable()), "admission": Admission(settings)}
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

    def reset() -> None:
        holder["ledger"] = Ledger(MemTable())
        holder["admission"] = Admission(settings)

    return one, reset


def _enable(mode: str) -> Callable[[], None]:
    """Turn telemetry on as ``mode`` says; returns how to turn it off again."""
    from shared.telemetry import signals

    if mode == "off":
        return lambda: None
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000, help="requests per mode")
    parser.add_argument("--block", type=int, default=100, help="requests per block; modes alternate by block")
    args = parser.parse_args(argv)
    quiet_logs()
    print(f"telemetry overhead on dispatch: {args.requests} requests per mode, {machine()}", flush=True)
    one, reset = _setup()
    modes = ("off", "simple", "batch")
    # Short blocks, modes alternating (and their order turning), so a machine shared with other
    # work slows every mode alike; the per-block ratios to the neighbouring "off" block are kept too.
    cpu = dict.fromkeys(modes, 0.0)
    ratios: dict[str, list[float]] = {m: [] for m in modes[1:]}
    blocks = max(1, args.requests // args.block)
    for b in range(blocks):
        order = modes[b % 3 :] + modes[: b % 3]
        seconds = {mode: measure(mode, args.block, one, reset, f"{mode}{b}") for mode in order}
        for mode in modes:
            cpu[mode] += seconds[mode]
        for mode in modes[1:]:
            ratios[mode].append(seconds[mode] / seconds["off"])
    n = blocks * args.block
    base = cpu["off"] / n * 1e6
    print(f"off:     {base:8.1f} µs CPU/request")
    for mode in modes[1:]:
        value = cpu[mode] / n * 1e6
        median_ratio = statistics.median(ratios[mode])
        print(
            f"{mode + ':':<8} {value:8.1f} µs CPU/request  (+{(value - base) / base * 100:.1f} % over off; "
            f"median of {blocks} block ratios +{(median_ratio - 1) * 100:.1f} %)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
