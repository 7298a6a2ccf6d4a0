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
from shared.telemetry.tracecontext import TraceParent, parse
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
    api: _Api
    instruments: dict[str, Any] = field(default_factory=dict)
    points: dict[str, dict[tuple[tuple[str, Any], ...], float]] = field(default_factory=dict)
    totals: dict[str, dict[frozenset[tuple[str, Any]], float]] = field(default_factory=dict)
    """Each counter's running total per attribute set (reported by its callback)."""
    pending: list[tuple[str, float, Attributes | None]] = field(default_factory=list)
    """Histogram values recorded since the last collection: (instrument, value, attributes)."""
    lock: Lock = field(default_factory=Lock)


@dataclass(frozen=True)
class _Api:
    """The OpenTelemetry API names a span needs, looked up once at :func:`enable` rather than
    imported on every call (an ``import`` inside a function costs a lookup each time, and the
    dispatch path starts two spans per request: docs/performance.md, "Telemetry overhead")."""

    attach: Any
    detach: Any
    empty: Any
    current_span: Any
    in_context: Any
    remote: Any
    span_context: Any
    flags: Any
    link: Any
    consumer: Any
    internal: Any
    status: Any
    error: Any

    @classmethod
    def load(cls) -> _Api:
        from opentelemetry import context, trace

        return cls(
            attach=context.attach,
            detach=context.detach,
            empty=context.Context,
            current_span=trace.get_current_span,
            in_context=trace.set_span_in_context,
            remote=trace.NonRecordingSpan,
            span_context=trace.SpanContext,
            flags=trace.TraceFlags,
            link=trace.Link,
            consumer=trace.SpanKind.CONSUMER,
            internal=trace.SpanKind.INTERNAL,
            status=trace.Status,
            error=trace.StatusCode.ERROR,
        )


_on: _On | None = None


def enable(meter_provider: MeterProvider, tracer_provider: TracerProvider) -> None:
    """Record from now on, into these providers (called once per process)."""
    global _on
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    state = _On(
        meter=meter_provider.get_meter(SCOPE),
        tracer=tracer_provider.get_tracer(SCOPE),
        propagator=TraceContextTextMapPropagator(),
        api=_Api.load(),
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


PENDING_MAX = 10_000
"""Histogram values kept for the next collection at most; more are handed to the SDK at once
(a reader that never collects must not make the process grow)."""


def _create(state: _On, spec: Instrument) -> Any:
    """The SDK instrument of ``spec``.

    Counters are observable counters over :attr:`_On.totals`, and histogram values wait in
    :attr:`_On.pending` until the next collection: a request then adds to a dict under a lock
    instead of running the SDK's measurement path (context lookup, exemplar filter, view
    matching, attribute hashing, aggregation under its own lock) inside the request. That path
    is ~10 µs in a loop but 30–70 µs between the dispatch's other work (cold caches), which was
    a third of telemetry's cost per request (docs/performance.md, "Telemetry overhead").
    What is exported is the same: an observable counter reports the running total of each
    attribute set and the SDK turns it into a monotonic sum, cumulative or delta as the
    exporter asks (opentelemetry.io/docs/specs/otel/metrics/api/#asynchronous-counter; sdk
    ``_internal/_view_instrument_match.py``); the observable instruments' callbacks run at the
    start of each collection, before the synchronous instruments' storage is read
    (opentelemetry-sdk ``SynchronousMeasurementConsumer.collect``), so histogram values drained
    there are in that very collection."""
    meter = state.meter
    from opentelemetry.metrics import CallbackOptions, Observation

    if spec.kind is Kind.HISTOGRAM:
        return meter.create_histogram(spec.name, unit=spec.unit, description=spec.description)
    table = state.totals.setdefault(spec.name, {}) if spec.kind is Kind.COUNTER else None

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        _drain(state)
        with state.lock:
            if table is not None:
                return [Observation(value, dict(attrs)) for attrs, value in table.items()]
            points = list(state.points.get(spec.name, {}).items())
        return [Observation(value, dict(attrs)) for attrs, value in points]

    if table is not None:
        return meter.create_observable_counter(
            spec.name, callbacks=[observe], unit=spec.unit, description=spec.description
        )
    return meter.create_observable_gauge(spec.name, callbacks=[observe], unit=spec.unit, description=spec.description)


def _drain(state: _On) -> None:
    """Hand the waiting histogram values to the SDK's instruments."""
    with state.lock:
        waiting, state.pending = state.pending, []
    for name, value, attributes in waiting:
        state.instruments[name].record(value, attributes=attributes)


# --- metrics ------------------------------------------------------------------------------------


def add(spec: Instrument, value: float = 1, attributes: Attributes | None = None) -> None:
    """Add to a counter (``value`` ≥ 0)."""
    state = _on
    if state is None or value < 0:
        return
    key = frozenset(attributes.items()) if attributes else frozenset()
    with state.lock:
        table = state.totals[spec.name]
        table[key] = table.get(key, 0) + value


def record(spec: Instrument, value: float, attributes: Attributes | None = None) -> None:
    """Record one value of a histogram (negative values, from clock skew, are dropped)."""
    state = _on
    if state is None or value < 0:
        return
    with state.lock:
        state.pending.append((spec.name, value, attributes))
        full = len(state.pending) >= PENDING_MAX
    if full:
        _drain(state)


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

    def __init__(self, otel: OtelSpan | None = None, api: _Api | None = None):
        self._otel = otel
        self._api = api
        self._traceparent: str | None = None

    @property
    def traceparent(self) -> str | None:
        """This span's context as a version-00 ``traceparent`` (what later hops name as their parent).

        Formatted once per span: the dispatch path reads it for the ledger, the Job's annotation
        and the log records."""
        if self._otel is None:
            return None
        if self._traceparent is None:
            ctx = self._otel.get_span_context()
            self._traceparent = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
        return self._traceparent

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
            self._otel.set_attributes(attributes)

    def error(self, description: str) -> None:
        if self._otel is not None and self._api is not None:
            self._otel.set_status(self._api.status(self._api.error, description))


_OFF = Span()


def _context_of(state: _On, parent: TraceParent, parent_state: str | None) -> Any:
    """The context whose current span is the remote ``parent``: what
    ``TraceContextTextMapPropagator.extract`` returns for it (opentelemetry-python
    ``opentelemetry/trace/propagation/tracecontext.py``: a ``NonRecordingSpan`` of a remote
    ``SpanContext`` set in a new, empty ``Context``). ``parent`` is already parsed and checked
    (:func:`shared.telemetry.tracecontext.parse`, the same rules), so the propagator's second
    parse is skipped unless a ``tracestate`` needs its parser."""
    kept = valid_tracestate(parent_state)
    if kept:
        return state.propagator.extract({"traceparent": parent.header(), "tracestate": kept})
    api = state.api
    remote = api.span_context(
        int(parent.trace_id, 16), int(parent.span_id, 16), is_remote=True, trace_flags=api.flags(int(parent.flags, 16))
    )
    return api.in_context(api.remote(remote), api.empty())


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
    api = state.api
    links = []
    ctx = None
    parsed = parse(parent)
    if parsed is not None:
        ctx = _context_of(state, parsed, parent_state)
        here = api.current_span().get_span_context()
        if here.is_valid and here.span_id != api.current_span(ctx).get_span_context().span_id:
            links.append(api.link(here))
    started = state.tracer.start_span(
        name,
        context=ctx,
        kind=api.consumer if consumer else api.internal,
        attributes=attributes,
        links=links,
        start_time=_nanos(start) if start else None,
    )
    handle = Span(started, api)
    token = api.attach(api.in_context(started))
    try:
        yield handle
    except BaseException as e:
        started.record_exception(e)
        started.set_status(api.status(api.error, type(e).__name__))
        raise
    finally:
        api.detach(token)
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
    parsed = parse(traceparent) if state is not None else None
    if state is None or parsed is None:
        yield
        return
    token = state.api.attach(_context_of(state, parsed, tracestate))
    try:
        yield
    finally:
        state.api.detach(token)


def _nanos(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)
