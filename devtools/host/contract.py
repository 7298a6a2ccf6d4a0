"""The host as its trigger listeners and HTTP front end see it (azure-functions-host's ScriptHost):
the invocation result types and the members every caller uses. ``host.py`` implements it;
``http``, ``queues`` and ``timers`` import only this, never ``host``."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Literal, Protocol

from devtools.host.bindings import FunctionSpec

Outcome = Literal["succeeded", "failed", "poisoned"]


@dataclasses.dataclass(frozen=True)
class FunctionStats:
    """Counters for one function. ``poisoned`` counts messages moved to ``<queue>-poison``."""

    invocations: int = 0
    successes: int = 0
    failures: int = 0
    poisoned: int = 0


@dataclasses.dataclass(frozen=True)
class Invocation:
    """One finished invocation: its outcome and the worker's response (None if it never answered)."""

    function: str
    ok: bool
    error: str | None
    response: Any = None
    traceparent: str = ""
    """The W3C trace context the host sent with it (``InvocationRequest.trace_context``)."""


class Host(Protocol):
    """What a trigger listener calls on the host: its stop signal and one invocation."""

    stopping: threading.Event
    started: bool

    def invoke(
        self, spec: FunctionSpec, input_data: list[Any], trigger_metadata: dict[str, Any], *, reason: str
    ) -> bool: ...
