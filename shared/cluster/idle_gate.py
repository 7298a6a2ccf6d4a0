"""The idle stop's gate: dispatch's ``ClusterGate`` in aks mode with ``VNB_IDLE_STOP_MINUTES`` set.

:class:`IdleGate` wraps the bootstrap's ``AksGate``. It reads the power record at most every
``VNB_READY_CACHE_SECONDS``: ``draining`` → writes ``running`` before any Job is created;
``stopping`` → "not ready" (deferred); ``stopped`` → forgets the cached cluster and lets the
bootstrap start it (never waiting: the POST is the action, later messages observe it), and writes
``running`` once the virtual node is Ready again. The policy is ``shared.cluster.power`` (pure);
the reconcile-timer side is ``shared.flows.idle``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from shared.cluster.bootstrap import AksGate
from shared.cluster.power import Phase, PowerRecord, gate_view
from shared.cluster.readiness import Readiness
from shared.config.settings import Settings

log = logging.getLogger("vnode_batch.idle")


CAS_ATTEMPTS = 3


class PowerStoreApi(Protocol):
    """``shared.cluster.power_store.PowerStore``."""

    def read(self) -> tuple[PowerRecord | None, str | None]: ...
    def create(self, record: PowerRecord) -> bool: ...
    def swap(self, record: PowerRecord, etag: str) -> bool: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


class IdleGate:
    """``ClusterGate`` for aks mode with ``VNB_IDLE_STOP_MINUTES`` set (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        inner: AksGate,
        store: PowerStoreApi,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.inner = inner
        self.store = store
        self._now = now
        self._clock = clock
        self._lock = threading.Lock()
        self._trusted_until = 0.0
        self._seen: Phase | None = None

    def check(self) -> Readiness:
        if self._clock() < self._trusted_until:
            return self.inner.check()  # the hot path: the record said "running" recently
        with self._lock:
            if self._clock() < self._trusted_until:
                return self.inner.check()
            record, etag = self.store.read()
            for _ in range(CAS_ATTEMPTS):
                view = gate_view(record, self._now())
                if not view.cancel_drain:
                    break
                assert record is not None
                assert etag is not None
                back = record.moved(Phase.RUNNING, self._now(), "drain cancelled: a request arrived", active=True)
                if self.store.swap(back, etag):
                    log.info("idle stop: a request arrived while draining; the cluster stays up")
                    record = back
                    break
                record, etag = self.store.read()  # another instance wrote first: look again
            else:
                return Readiness(cluster=None, reason="idle stop: the power record keeps changing; retrying shortly")
            phase = record.phase if record is not None else Phase.RUNNING
            if phase != self._seen:
                if phase is not Phase.RUNNING:
                    self.inner.forget()  # a cluster cached as ready may be stopped now
                self._seen = phase
            if view.hold:
                return Readiness(cluster=None, reason=f"idle stop: {view.hold}")
            if not view.stopped:
                self._trusted_until = self._clock() + self.settings.ready_cache_seconds
                return self.inner.check()
            readiness = self.inner.check()  # the bootstrap starts a stopped cluster (Do.START)
            if readiness.cluster is not None and record is not None and etag is not None:
                if self.store.swap(
                    record.moved(Phase.RUNNING, self._now(), "started for a request", active=True), etag
                ):
                    log.info("idle stop: cluster %s started again for a request", self.settings.cluster_name)
                self._seen = None  # re-read next time, whoever won the swap
            elif readiness.cluster is None:
                readiness = Readiness(
                    cluster=None, reason=f"cluster stopped for idleness, starting: {readiness.reason}"
                )
            return readiness
