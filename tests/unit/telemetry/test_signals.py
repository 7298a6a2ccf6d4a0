"""The recorder's metrics and spans as an exporter sees them, with the SDK's in-memory reader and
exporter: counters are totalled in the app and histogram values handed over at collection
(``shared.telemetry.signals._create``), which must export exactly what the SDK's own
instruments would — every value once, cumulative or delta as the reader asks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.telemetry import names, signals
from tests.conftest import metric_points

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    return metric_points(reader).get(name, [])


def enable(temporality: AggregationTemporality = AggregationTemporality.CUMULATIVE) -> InMemoryMetricReader:
    reader = InMemoryMetricReader(
        preferred_temporality={Counter: temporality, ObservableCounter: temporality, Histogram: temporality}
    )
    spans = TracerProvider()
    spans.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    signals.enable(MeterProvider(metric_readers=[reader]), spans)
    return reader


@pytest.fixture(autouse=True)
def off_afterwards() -> Iterator[None]:
    yield
    signals.disable()


def test_a_counter_adds_up_across_threads_and_attribute_order_and_stays_cumulative() -> None:
    reader = enable()

    def add_many() -> None:
        for _ in range(500):
            signals.add(names.RECEIVED, 1, {names.SOURCE: "queue", names.TEAM: "a"})
            signals.add(names.RECEIVED, 1, {names.TEAM: "a", names.SOURCE: "queue"})

    threads = [threading.Thread(target=add_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    signals.add(names.RECEIVED, 2, {names.SOURCE: "api", names.TEAM: ""})
    signals.add(names.RECEIVED, -1, {names.SOURCE: "api", names.TEAM: ""})  # ignored: counters only grow

    first = {
        (p.attributes[names.SOURCE], p.attributes[names.TEAM]): p.value for p in points(reader, names.RECEIVED.name)
    }
    assert first == {("queue", "a"): 4000, ("api", ""): 2}
    signals.add(names.RECEIVED, 1, {names.SOURCE: "api", names.TEAM: ""})
    second = {p.attributes[names.SOURCE]: p.value for p in points(reader, names.RECEIVED.name)}
    assert second == {"queue": 4000, "api": 3}


def test_with_delta_temporality_each_collection_reports_what_was_added_since_the_last() -> None:
    reader = enable(AggregationTemporality.DELTA)  # what the Azure Monitor exporter asks for
    signals.add(names.RECEIVED, 5, {names.SOURCE: "queue", names.TEAM: ""})
    signals.record(names.CREATE_DURATION, 1.5)
    first = metric_points(reader)
    assert [p.value for p in first[names.RECEIVED.name]] == [5]
    assert [p.count for p in first[names.CREATE_DURATION.name]] == [1]
    signals.add(names.RECEIVED, 2, {names.SOURCE: "queue", names.TEAM: ""})
    second = metric_points(reader)
    assert [p.value for p in second[names.RECEIVED.name]] == [2]
    assert sum(p.count for p in second.get(names.CREATE_DURATION.name, [])) == 0


def test_histogram_values_reach_the_next_collection_once_even_past_the_waiting_limit() -> None:
    reader = enable()
    for i in range(signals.PENDING_MAX + 5):  # the limit hands them over early; none is lost or doubled
        signals.record(names.CREATE_DURATION, float(i % 7), {names.TEAM: "a"})
    signals.record(names.CREATE_DURATION, -1.0)  # clock skew: dropped
    (point,) = points(reader, names.CREATE_DURATION.name)
    assert point.count == signals.PENDING_MAX + 5
    assert point.sum == sum(float(i % 7) for i in range(signals.PENDING_MAX + 5))
    assert point.attributes == {names.TEAM: "a"}
    (again,) = points(reader, names.CREATE_DURATION.name)
    assert again.count == point.count  # cumulative: nothing recorded twice


def test_a_span_with_a_carried_traceparent_is_its_child_with_or_without_a_tracestate() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    signals.enable(MeterProvider(), tracer_provider)
    with signals.span("plain", parent=PARENT) as plain:
        assert plain.trace_id == "0af7651916cd43dd8448eb211c80319c"
        assert plain.traceparent is not None
        assert plain.traceparent.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    with signals.span("stated", parent=PARENT, parent_state="vendor=x"):
        pass
    with signals.span("broken", parent="00-nonsense"):
        pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    for name in ("plain", "stated"):
        parent = spans[name].parent
        assert parent is not None
        assert parent.is_remote
        assert (parent.trace_id, parent.span_id) == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)
    assert spans["stated"].context.trace_state.to_header() == "vendor=x"
    assert spans["broken"].parent is None
