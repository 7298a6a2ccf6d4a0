"""Log records carry the request key and trace id of the request being handled.

:func:`bind` marks the request a block of code works on (a context variable, so each thread of
the reconcile pass and each invocation has its own); :func:`install` adds a log-record factory
that copies it onto every record as the attributes ``vnb.request.key`` and ``vnb.trace_id``. The
OpenTelemetry logging handler (the Azure Monitor distro's) exports a record's extra attributes
as log attributes (customDimensions in Application Insights ``traces``), and its own
``trace_id``/``span_id`` when a span is current; formatters may use ``%(vnb_key)s`` and
``%(vnb_trace_id)s``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from shared.telemetry.tracecontext import parse

KEY_ATTRIBUTE = "vnb.request.key"
TRACE_ATTRIBUTE = "vnb.trace_id"

_current: ContextVar[tuple[str, str] | None] = ContextVar("vnb_request", default=None)
_installed = False


@contextmanager
def bind(key: str, traceparent: str | None = None) -> Iterator[None]:
    """Records logged inside the block name ``key`` and the trace of ``traceparent``."""
    parsed = parse(traceparent)
    token = _current.set((key, parsed.trace_id if parsed else ""))
    try:
        yield
    finally:
        _current.reset(token)


@contextmanager
def scope() -> Iterator[None]:
    """A block in which :func:`mark` may name the request (restored when the block leaves)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def mark(key: str, traceparent: str | None = None) -> None:
    """From here to the end of the enclosing :func:`scope`, records name ``key`` and its trace."""
    parsed = parse(traceparent)
    _current.set((key, parsed.trace_id if parsed else ""))


def install() -> None:
    """Wrap the log-record factory once per process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        bound = _current.get()
        key, trace_id = bound if bound is not None else ("", "")
        record.vnb_key = key
        record.vnb_trace_id = trace_id
        if bound is not None:
            record.__dict__[KEY_ATTRIBUTE] = key
            if trace_id:
                record.__dict__[TRACE_ATTRIBUTE] = trace_id
        return record

    logging.setLogRecordFactory(factory)
