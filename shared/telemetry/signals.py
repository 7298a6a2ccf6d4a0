"""The recorder the flows call: metrics and spans, no-ops until :func:`enable`.

Off (the default, VNB_TELEMETRY=off), each call is one global read and a return, and
``opentelemetry`` is never imported: the dispatch path's cold start and CPU per request stay as
they were (bench/telemetry_overhead.py, docs/performance.md). :func:`enable` is called once per
process by ``shared.adapters.telemetry.configure`` with the providers it built (or the
Functions worker's, when its Azure Monitor integration configured them), or by a test with
in-memory readers and exporters.

Observable gauges (capacity, waiting requests, poison depth) are sampled by the reconcile pass:
it calls :func:`gauge` with the latest points, and the gauge's callback reports them on each
collection (the metrics API's asynchronous instruments: opentelemetry.io/docs/specs/otel/metrics/
api/#asynchronous-gauge).

Spans. A request's spans all belong to one trace: its ``traceparent`` (the intake span's
context) travels in the deferral envelope and the Job's annotation, and every later span names
it as its *parent*. The invocation that runs a later hop (a queue trigger, the reconcile timer)
has its own context from the Functions host (the worker attaches it before calling the function
when PYTHON_ENABLE_OPENTELEMETRY is true: azure-functions-runtime ``otel.configure_opentelemetry``
extracts ``invocation_context.trace_context``); that one is added as a *link*, because the hop
is asynchronous: the invocation did not cause the request, it only carried it on (the
specification's rule for batch and async work, opentelemetry.io/docs/specs/otel/overview/#links-between-spans).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from threading import Lock
from typing import TYPE_CHECKING, Any

from shared.telemetry import names
from shared.telemetry.names import Instrument, Kind
from shared.telemetry.tracecontext import parse
from shared.telemetry.tracecontext import tracestate as valid_tracestate

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span as OtelSpan
    from opentelemetry.trace import TracerProvider

Attributes = Mapping[str, str | int | float | bool]

SCOPE = "vnode-batch"
"""The instrumentation scope name of every meter and tracer the app uses."""


@dataclass
class _On:
    meter: Any
    tracer: Any
    propagator: Any
    instruments: dict[str, Any] = field(default_factory=dict)
    points: dict[str, dict[tuple[tuple[str, Any], ...], float]] = field(default_factory=dict)
    lock: Lock = field(default_factory=Lock)


_on: _On | None = None


def enable(meter_provider: MeterProvider, tracer_provider: TracerProvider) -> None:
    """Record from now on, into these providers (called once per process)."""
    global _on
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    state = _On(
        meter=meter_provider.get_meter(SCOPE),
        tracer=tracer_provider.get_tracer(SCOPE),
        propagator=TraceContextTextMapPropagator(),
    )
    for spec in names.ALL:
        state.instruments[spec.name] = _create(state, spec)
    _on = state


def disable() -> None:
    """Back to no-ops (tests; a process never turns telemetry off otherwise)."""
    global _on
    _on = None


def enabled() -> bool:
    return _on is not None


def _create(state: _On, spec: Instrument) -> Any:
    meter = state.meter
    if spec.kind is Kind.COUNTER:
        return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)
    if spec.kind is Kind.HISTOGRAM:
        return meter.create_histogram(spec.name, unit=spec.unit, description=spec.description)
    from opentelemetry.metrics import CallbackOptions, Observation

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        with state.lock:
            points = list(state.points.get(spec.name, {}).items())
        return [Observation(value, dict(attrs)) for attrs, value in points]

    return meter.create_observable_gauge(spec.name, callbacks=[observe], unit=spec.unit, description=spec.description)


# --- metrics ------------------------------------------------------------------------------------


def add(spec: Instrument, value: float = 1, attributes: Attributes | None = None) -> None:
    """Add to a counter (``value`` ≥ 0)."""
    state = _on
    if state is None or value < 0:
        return
    state.instruments[spec.name].add(value, attributes=dict(attributes or {}))


def record(spec: Instrument, value: float, attributes: Attributes | None = None) -> None:
    """Record one value of a histogram (negative values, from clock skew, are dropped)."""
    state = _on
    if state is None or value < 0:
        return
    state.instruments[spec.name].record(value, attributes=dict(attributes or {}))


def gauge(spec: Instrument, points: Iterable[tuple[Attributes, float]]) -> None:
    """Replace what an observable gauge reports: one value per attribute set."""
    state = _on
    if state is None:
        return
    table = {tuple(sorted(attrs.items())): float(value) for attrs, value in points}
    with state.lock:
        state.points[spec.name] = table


# --- spans --------------------------------------------------------------------------------------


class Span:
    """A started span, or the stand-in of one while telemetry is off (``traceparent`` None)."""

    def __init__(self, otel: OtelSpan | None = None):
        self._otel = otel

    @property
    def traceparent(self) -> str | None:
        """This span's context as a version-00 ``traceparent`` (what later hops name as their parent)."""
        if self._otel is None:
            return None
        ctx = self._otel.get_span_context()
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"

    @property
    def tracestate(self) -> str | None:
        if self._otel is None:
            return None
        return self._otel.get_span_context().trace_state.to_header() or None

    @property
    def trace_id(self) -> str | None:
        parsed = parse(self.traceparent)
        return parsed.trace_id if parsed else None

    def set(self, attributes: Attributes) -> None:
        if self._otel is not None:
            self._otel.set_attributes(dict(attributes))

    def error(self, description: str) -> None:
        if self._otel is not None:
            from opentelemetry.trace import Status, StatusCode

            self._otel.set_status(Status(StatusCode.ERROR, description))


_OFF = Span()


@contextmanager
def span(
    name: str,
    *,
    parent: str | None = None,
    parent_state: str | None = None,
    attributes: Attributes | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    consumer: bool = False,
) -> Iterator[Span]:
    """A span named ``name``, current while the block runs.

    ``parent``: the request's ``traceparent`` (a later, asynchronous hop: the invocation's own
    context becomes a link); None: a child of the current context (the host's invocation, or a
    new trace). An invalid ``parent`` is ignored (a new trace, W3C Trace Context §3.2.2).
    ``start``/``end``: a span of something that happened earlier (the Job's run, read from its
    status), ended when the block leaves. ``consumer``: SpanKind CONSUMER (processing a queue
    message: the messaging conventions' kind), else INTERNAL."""
    state = _on
    if state is None:
        yield _OFF
        return
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    links = []
    ctx = None
    if parse(parent) is not None:
        carrier = {"traceparent": str(parent)}
        kept = valid_tracestate(parent_state)
        if kept:
            carrier["tracestate"] = kept
        ctx = state.propagator.extract(carrier)
        here = trace.get_current_span().get_span_context()
        if here.is_valid and here.span_id != trace.get_current_span(ctx).get_span_context().span_id:
            links.append(trace.Link(here))
    kind = trace.SpanKind.CONSUMER if consumer else trace.SpanKind.INTERNAL
    started = state.tracer.start_span(
        name,
        context=ctx,
        kind=kind,
        attributes=dict(attributes or {}),
        links=links,
        start_time=_nanos(start) if start else None,
    )
    handle = Span(started)
    token = otel_context.attach(trace.set_span_in_context(started))
    try:
        yield handle
    except BaseException as e:
        started.record_exception(e)
        started.set_status(trace.Status(trace.StatusCode.ERROR, type(e).__name__))
        raise
    finally:
        otel_context.detach(token)
        started.end(end_time=_nanos(end) if end else None)


@contextmanager
def invocation(traceparent: str | None, tracestate: str | None = None) -> Iterator[None]:
    """The Functions host's context of this invocation (``context.trace_context``), current while
    the block runs, so the spans inside are its children (first hop) or link to it (later hops).

    The host sends it in every ``InvocationRequest`` (azure-functions-host
    ``ScriptInvocationContextExtensions.ToRpcInvocationRequest``: ``TraceContext`` from
    ``WorkerFunctionInvoker``'s ``Traceparent = Activity.Current?.Id``). The worker attaches it
    itself only on its event loop: azure-functions-runtime 1.3.0 ``handle_event.invocation_request``
    calls ``otel.configure_opentelemetry`` there, then runs a sync function through
    ``loop.run_in_executor(run_sync_func)``, which copies no context variables to the thread pool,
    so the app's sync functions would not see it. Hence this, with the value the function is given."""
    state = _on
    if state is None or parse(traceparent) is None:
        yield
        return
    from opentelemetry import context as otel_context

    carrier = {"traceparent": str(traceparent)}
    kept = valid_tracestate(tracestate)
    if kept:
        carrier["tracestate"] = kept
    token = otel_context.attach(state.propagator.extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)


def _nanos(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)
