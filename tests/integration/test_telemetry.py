"""Telemetry (issue 21) with in-memory exporters: the metrics and the one trace of a request that
waits for capacity, runs and is reported.

Real services over real sockets (Azurite's ledger and queues, the HTTPS Kubernetes stand-in with
its virtual node), driven the way the functions drive them (dispatch per message, reconcile
passes), with the OpenTelemetry SDK's ``InMemorySpanExporter`` and ``InMemoryMetricReader`` in
place of the exporters. The host's invocation context is attached by the worker runtime's own
code (azure-functions-runtime ``otel.configure_opentelemetry``, what it runs before each
invocation when PYTHON_ENABLE_OPENTELEMETRY is true), so the test also shows which spans link to
it and which have the request's receive span as their parent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from azure_functions_runtime.bindings.tracecontext import TraceContext
from azure_functions_runtime.otel import configure_opentelemetry, update_opentelemetry_status
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devtools.standins.kube.apiserver import KubeStandIn
from shared.adapters.queues import Queues as AppQueues
from shared.adapters.tables import Tables
from shared.base.conventions import ANN_TRACEPARENT
from shared.cluster.gate import KubeconfigGate
from shared.config.settings import Settings
from shared.flows import gauges
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound, Outcome
from shared.flows.reconcile import run
from shared.ledger.records import State, view
from shared.ledger.store import Ledger
from shared.telemetry import names, signals
from tests.conftest import metric_points, wait_for
from tests.integration.conftest import Queues

pytestmark = pytest.mark.integration

NS = "vnode-batch"
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
HOST_TRACE = "0af7651916cd43dd8448eb211c80319c"
"""The trace of the host's invocations in this test (as the Functions host would send it)."""


@pytest.fixture
def telemetry() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    signals.enable(MeterProvider(metric_readers=[reader]), tracer_provider)
    yield spans, reader
    signals.disable()


def request(key: str, *, seconds: float, **extra: Any) -> bytes:
    body = {"id": key, "image": IMAGE, "command": ["sh", "-c", f"sleep {seconds}"], "cpu": "1", **extra}
    return json.dumps(body).encode()


def as_invocation(span_id: str, call: Callable[[], Any]) -> Any:
    """Run ``call`` as one function invocation: on its own thread, with the host's trace context
    attached by the worker runtime's code (``configure_opentelemetry``), as the worker does. Each
    invocation is its own host trace (``HOST_TRACE`` with its last digits replaced by the span id)."""
    update_opentelemetry_status()
    host_trace = HOST_TRACE[:16] + span_id
    invocation = SimpleNamespace(trace_context=TraceContext(f"00-{host_trace}-{span_id}-01", "", {}))
    out: list[Any] = []

    def body() -> None:
        configure_opentelemetry(invocation)
        out.append(call())

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(60)
    assert out, "the invocation did not finish"
    return out[0]


def total(points: list[Any], **attributes: str) -> float:
    return sum(p.value for p in points if all(p.attributes.get(k) == v for k, v in attributes.items()))


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def test_a_request_that_waits_for_capacity_runs_and_is_reported_is_one_trace_and_counted(
    app_env: dict[str, str],
    kube: KubeStandIn,
    queues: Queues,
    telemetry: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    spans, reader = telemetry
    settings = Settings.from_env({**app_env, "VNB_CAPACITY_CONTAINER_GROUPS": "1", "VNB_CAPACITY_CACHE_SECONDS": "0.1"})
    ledger = Ledger(Tables(settings))
    gate = KubeconfigGate(settings)
    requeued: list[str] = []
    sent: list[str] = []

    def deliver(message: Inbound, span_id: str) -> Any:
        return as_invocation(
            span_id,
            lambda: dispatch(
                message, settings=settings, gate=gate, requeue=lambda text, delay: requeued.append(text), ledger=ledger
            ),
        )

    def reconcile_pass() -> Any:
        return as_invocation(
            "00000000000000aa",
            lambda: run(settings=settings, gate=gate, send_event=sent.append, ledger=ledger, requeue=None),
        )

    first = deliver(
        Inbound(message_id="m-blocker", body=request("blocker", seconds=1), inserted_at=datetime.now(UTC)),
        "0000000000000001",
    )
    assert first.outcome is Outcome.CREATED
    waiting = deliver(
        Inbound(message_id="m-waiter", body=request("waiter", seconds=0.2), inserted_at=datetime.now(UTC)),
        "0000000000000002",
    )
    assert waiting.outcome is Outcome.DEFERRED, waiting.detail
    assert "waiting for capacity" in str(waiting.detail)
    # The waiting gauge, sampled from the ledger, and the poison queue's depth from the queue.
    queues.poison.send_message("{}")
    gauges.queues_and_ledger(
        settings, count=AppQueues(settings).approximate_count, ledger=ledger, now=datetime.now(UTC), every=0
    )
    points = metric_points(reader)
    assert total(points[names.WAITING.name], **{names.REASON: State.WAITING_FOR_CAPACITY.value}) == 1
    assert total(points[names.POISON_DEPTH.name], **{names.DESTINATION: settings.poison_queue}) == 1

    # The blocker ends and is reported; the waiter's requeued message comes back and runs.
    wait_for(lambda: reconcile_pass() and any("blocker" in e for e in sent), what="the blocker reported", timeout=30)
    # Its container group is freed once virtual-kubelet has deleted its pod (the stand-in's pods
    # stay Terminating until then, and the job-tracking finalizer comes off a batch period later):
    # the waiter's message comes back after that, as its deferral's visibility delay would make it.
    wait_for(lambda: not kube.pods(NS), what="the blocker's pod gone", timeout=30)
    # The dispatcher trusts its capacity view for VNB_CAPACITY_CACHE_SECONDS (0.1 s here): the last
    # reconcile pass listed the pod still Terminating, so a redelivery within that period would
    # rightly wait again (shared.capacity.admission). Its deferral delay is far longer in the app.
    time.sleep(2 * settings.capacity_cache_seconds)
    (envelope,) = requeued
    again = Inbound(
        message_id="m-waiter-2", body=envelope.encode(), inserted_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    created = deliver(again, "0000000000000003")
    assert created.outcome is Outcome.CREATED, created.detail
    (job,) = [j for j in kube.jobs(NS) if j["metadata"]["name"] == created.job_name]
    annotated = job["metadata"]["annotations"][ANN_TRACEPARENT]
    wait_for(lambda: reconcile_pass() and any("waiter" in e for e in sent), what="the waiter reported", timeout=30)

    # --- one trace: receive → wait → dispatch → create → run → report --------------------------
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in spans.get_finished_spans():
        if (span.attributes or {}).get(names.REQUEST_KEY) == "waiter":
            by_name.setdefault(span.name, []).append(span)
    assert set(by_name) == {
        names.SPAN_RECEIVE,
        names.SPAN_WAIT,
        names.SPAN_DISPATCH,
        names.SPAN_CREATE,
        names.SPAN_RUN,
        names.SPAN_REPORT,
    }
    assert all(len(found) == 1 for found in by_name.values()), {k: len(v) for k, v in by_name.items()}
    one = {k: v[0] for k, v in by_name.items()}
    receive = one[names.SPAN_RECEIVE]
    trace_id = receive.context.trace_id
    assert {s.context.trace_id for s in one.values()} == {trace_id}
    # The first delivery's span is a child of the host's invocation (the worker attached it) ...
    assert receive.parent is not None
    assert hex_id(receive.parent.trace_id, 32) == HOST_TRACE[:16] + "0000000000000002"
    assert hex_id(receive.parent.span_id, 16) == "0000000000000002"
    assert receive.attributes[names.DESTINATION] == settings.requests_queue
    # ... and every later hop is the receive span's child, linked to the invocation that carried it.
    receive_id = receive.context.span_id
    for name in (names.SPAN_WAIT, names.SPAN_DISPATCH, names.SPAN_RUN, names.SPAN_REPORT):
        parent = one[name].parent
        assert parent is not None, name
        assert parent.span_id == receive_id, name
    dispatch_span = one[names.SPAN_DISPATCH]
    assert [hex_id(link.context.trace_id, 32) for link in dispatch_span.links] == [HOST_TRACE[:16] + "0000000000000003"]
    assert [hex_id(link.context.span_id, 16) for link in dispatch_span.links] == ["0000000000000003"]
    assert [hex_id(link.context.span_id, 16) for link in one[names.SPAN_WAIT].links] == ["0000000000000003"]
    assert one[names.SPAN_CREATE].parent is not None
    assert one[names.SPAN_CREATE].parent.span_id == dispatch_span.context.span_id
    assert one[names.SPAN_WAIT].attributes[names.REASON].startswith("waiting for capacity")
    assert one[names.SPAN_RUN].attributes[names.OUTCOME] == "succeeded"
    assert one[names.SPAN_RUN].end_time <= one[names.SPAN_REPORT].end_time
    # The Job and the ledger name the same trace; GET /api/requests/{id} shows its id.
    assert annotated.split("-")[1] == hex_id(trace_id, 32)
    record = ledger.get("waiter")
    assert record is not None
    assert record.state == State.SUCCEEDED
    shown = view(
        record, trace_link=Settings.from_env({**app_env, "VNB_TRACE_URL": "https://t.example/{traceId}"}).trace_link
    )
    assert shown["traceId"] == hex_id(trace_id, 32)
    assert shown["traceUrl"] == f"https://t.example/{hex_id(trace_id, 32)}"

    # --- the metrics ---------------------------------------------------------------------------
    points = metric_points(reader)
    assert total(points[names.RECEIVED.name], **{names.SOURCE: "queue"}) == 2
    assert total(points[names.FINISHED.name], **{names.OUTCOME: "succeeded"}) == 2
    for histogram in (names.CREATE_DURATION, names.JOB_DURATION, names.REPORT_DURATION):
        assert sum(p.count for p in points[histogram.name]) == 2, histogram.name
    assert total(points[names.COST.name]) > 0
    assert total(points[names.RECONCILE_PASSES.name]) >= 2
    assert total(points[names.GROUPS_LIMIT.name]) == 1
    assert total(points[names.CORES_LIMIT.name]) == settings.capacity_cores


def test_through_the_local_host_the_first_span_is_a_child_of_the_hosts_invocation(
    make_runner: Callable[..., Any], app_env: dict[str, str], kube: KubeStandIn
) -> None:
    # The local host sends each invocation's trace context as the Functions host does; the real
    # worker runtime hands it to the function as ``context.trace_context``, and the app's receive
    # span (console exporter in the worker process) becomes its child: the trace the ledger and
    # the Job name is the host's.
    ledger = Ledger(Tables(Settings.from_env(app_env)))
    with make_runner(
        VNB_RECONCILE_SCHEDULE="0 0 0 1 1 *",
        VNB_FOLLOWUP_SECONDS="0",
        VNB_TELEMETRY="console",
        PYTHON_ENABLE_OPENTELEMETRY="true",
    ) as runner:
        invocation = runner.deliver("dispatch", request("via-host", seconds=0.1).decode())
        assert invocation.ok, invocation.error
    host_trace = invocation.traceparent.split("-")[1]
    record = ledger.get("via-host")
    assert record is not None
    assert record.trace_parent is not None
    assert record.trace_parent.split("-")[1] == host_trace
    assert record.trace_parent != invocation.traceparent  # a span of its own, under the host's
    (job,) = [j for j in kube.jobs(NS) if j["metadata"]["annotations"].get("vnode-batch.io/key") == "via-host"]
    assert job["metadata"]["annotations"][ANN_TRACEPARENT] == record.trace_parent


def test_with_telemetry_off_a_producers_traceparent_is_still_kept_and_a_bad_one_costs_nothing(
    app_env: dict[str, str], kube: KubeStandIn
) -> None:
    assert not signals.enabled()
    settings = Settings.from_env(app_env)
    ledger = Ledger(Tables(settings))
    gate = KubeconfigGate(settings)
    producer = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    for key, traceparent in (("good", producer), ("bad", "00-not-a-trace-01")):
        body = request(key, seconds=0.1, traceparent=traceparent, tracestate="vendor=1")
        result = dispatch(
            Inbound(message_id=f"m-{key}", body=body),
            settings=settings,
            gate=gate,
            requeue=lambda text, delay: None,
            ledger=ledger,
        )
        assert result.outcome is Outcome.CREATED, result.detail  # never refused for its trace fields
    good, bad = ledger.get("good"), ledger.get("bad")
    assert good is not None
    assert bad is not None
    assert good.trace_parent == producer
    assert bad.trace_parent is None
    assert view(good)["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "traceId" not in view(bad)
