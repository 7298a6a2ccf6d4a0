"""TODO docstring."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.adapters.kube import Cluster


@dataclass(frozen=True)
class Readiness:
    """The cluster gate's answer: a Cluster to use, or why not (and whether waiting helps)."""

    cluster: Cluster | None
    reason: str = ""
    hopeless: bool = False


class ClusterGate(Protocol):
    def check(self) -> Readiness: ...


Requeue = Callable[[str, int], None]
