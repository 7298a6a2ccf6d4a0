"""A request's W3C trace context on the queue (pure): the producer's own, and the app's envelope.

A producer may give its own trace context as two top-level fields of the request,
``traceparent`` and ``tracestate`` (the W3C Trace Context header names and formats,
www.w3.org/TR/trace-context/): the request's spans then join the producer's trace. They are
taken off the request before it is validated (they are not part of what the request asks for,
so they change neither its content hash nor its Job), and a value that does not parse is
dropped, never a reason to refuse the request (W3C §3.2.2: an invalid ``traceparent`` starts a
new trace). The app carries the trace on in the deferral envelope (``shared.intake.deferral``)
and on the Job (``ANN_TRACEPARENT``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from shared.telemetry.tracecontext import TRACEPARENT_MAX, TRACESTATE_MAX, parse, tracestate

FIELDS: Final = ("traceparent", "tracestate")


@dataclass(frozen=True)
class Trace:
    traceparent: str | None = None
    """A valid ``traceparent`` (version-00 form), or None."""
    tracestate: str | None = None

    @property
    def trace_id(self) -> str | None:
        parsed = parse(self.traceparent)
        return parsed.trace_id if parsed else None


NONE: Final = Trace()


def of(traceparent: object, state: object = None) -> Trace:
    """The trace context these values give (nothing, if ``traceparent`` is not valid)."""
    parsed = parse(traceparent)
    if parsed is None:
        return NONE
    return Trace(parsed.header(), tracestate(state))


def split(data: dict[str, Any]) -> tuple[dict[str, Any], Trace]:
    """``data`` without the trace fields, and the producer's trace context they gave."""
    if not any(name in data for name in FIELDS):
        return data, NONE
    rest = {k: v for k, v in data.items() if k not in FIELDS}
    return rest, of(data.get("traceparent"), data.get("tracestate"))


def schema_properties() -> dict[str, Any]:
    """The two fields as JSON Schema properties (docs/schemas/request.v1.json). They constrain
    nothing: any value is accepted, and one that is not a valid W3C value is ignored."""
    return {
        "traceparent": {
            "title": "Traceparent",
            "description": "Optional W3C Trace Context `traceparent` of the producer (a string of at most "
            f"{TRACEPARENT_MAX} characters): the request's spans join that trace. Any other value is ignored "
            "(a new trace starts), never a reason to refuse the request.",
            "examples": ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
        },
        "tracestate": {
            "title": "Tracestate",
            "description": "Optional W3C Trace Context `tracestate`, passed on with a valid `traceparent` when it "
            f"is printable ASCII of at most {TRACESTATE_MAX} characters; ignored otherwise.",
        },
    }
