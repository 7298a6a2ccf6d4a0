"""What the cluster gate answers (is the cluster ready?) and how a request is put back to wait."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.adapters.kube import Cluster
from shared.base.handles import MessageHandle


@dataclass(frozen=True)
class Readiness:
    """The cluster gate's answer: a Cluster to use, or why not (and whether waiting helps)."""

    cluster: Cluster | None
    reason: str = ""
    hopeless: bool = False


class ClusterGate(Protocol):
    def check(self) -> Readiness: ...


Requeue = Callable[[str, int], MessageHandle | None]
"""Send ``text`` to the requests queue, invisible for ``delay`` seconds; the new message's handle
(None when the sender cannot tell it), which lets the reconciler wake it early (``shared.flows.wake``)."""
