"""W3C Trace Context ``traceparent``/``tracestate`` values (pure).

The format is the W3C Recommendation "Trace Context" (www.w3.org/TR/trace-context/ §3.2):
``version "-" trace-id "-" parent-id "-" trace-flags``, lowercase hex of 2, 32, 16 and 2 digits,
where a trace-id or parent-id of all zeros is invalid and version ``ff`` is forbidden. A value
of a higher version may carry more fields after a ``-``; the first four are read (§3.2.4
"Versioning of traceparent"). A value that does not parse is ignored and a new trace starts
(§3.2.2: "If the vendor failed to parse traceparent, it MUST NOT attempt to parse tracestate"),
so a producer's bad header never costs it its request. ``tracestate`` is passed on as given,
within :data:`TRACESTATE_MAX` characters (§3.3.1.5: vendors "SHOULD propagate at least 512").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

TRACEPARENT_MAX: Final = 256
"""Characters a request's ``traceparent`` may have (version 00 uses 55; later versions may add fields)."""
TRACESTATE_MAX: Final = 512

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


@dataclass(frozen=True)
class TraceParent:
    trace_id: str
    """32 lowercase hex digits."""
    span_id: str
    """16 lowercase hex digits: the parent span."""
    flags: str = "01"

    def header(self) -> str:
        """The version-00 ``traceparent`` text."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    @property
    def sampled(self) -> bool:
        return bool(int(self.flags, 16) & 1)


def parse(value: object) -> TraceParent | None:
    """A valid ``traceparent`` → its parts; anything else → None (see the module docstring)."""
    if not isinstance(value, str) or len(value) > TRACEPARENT_MAX:
        return None
    return _parse(value)


@lru_cache(maxsize=256)
def _parse(value: str) -> TraceParent | None:
    # Memoized: one dispatch reads its request's traceparent four times or more (the span's
    # parent, the request's trace, the log records', the ledger's), always the same text, and
    # TraceParent is immutable. 256 texts of at most 256 characters: a few hundred KiB at most.
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return None
    return TraceParent(trace_id, span_id, flags)


def tracestate(value: object) -> str | None:
    """A ``tracestate`` worth passing on: printable ASCII (the only characters §3.3.1 allows)
    within :data:`TRACESTATE_MAX` characters; None otherwise."""
    if not isinstance(value, str) or not value.strip() or len(value) > TRACESTATE_MAX:
        return None
    if not all(" " <= c <= "~" for c in value):
        return None
    return value.strip()
