"""An in-memory world for the real services: a ledger table (``tests.model.memtable``), the
requests queue with the host's delivery rules, a cluster with Jobs and pods
(``tests.model.cluster``), the events queue — each implementing the protocol
the services already accept (``TableStore``, ``JobStore``, the Cluster calls dispatch and the
API make, ``Requeue``, ``SendEvent``). No project module is patched.

Faults are injected through the same protocols: Table errors (transient), a table that refuses an
entity like Table storage does (400: bad key characters, strings UTF-8 cannot encode, too long),
queue send failures, crashes between a service's ledger write and its event, a Kubernetes create
refused (422, webhook 403, RBAC 403), and hooks that run another actor in the middle of a call
(a DELETE while the reconciler reads logs, or while dispatch creates the Job).

The host rules followed (devtools/host/queues.py cites the WebJobs sources): a failed invocation
leaves its message to be delivered again with its dequeue count raised; at ``maxDequeueCount``
(host.json: 5) the body is copied to ``<queue>-poison`` as a new message and the deadletter
function runs on it; a poison-queue message that fails is not released and, past
``maxDequeueCount``, skipped for good (``stranded``); the events a queue function returns are
written only when it succeeds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.base.errors import TransientError
from shared.capacity.admission import Decision
from shared.cluster.readiness import Readiness
from shared.config.settings import Settings
from shared.flows.deadletter import deadletter
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound
from shared.flows.reconcile import reconcile
from shared.ledger.api import RequestsApi
from shared.ledger.outcome_writer import flush
from shared.ledger.records import State
from shared.ledger.store import Ledger
from tests.conftest import make_env
from tests.model.cluster import Cluster
from tests.model.memtable import MemTable

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
MAX_DEQUEUE = 5
ENV = {
    "VNB_KEEP_FINISHED_SECONDS": "0",
    "VNB_BOOTSTRAP_MAX_WAIT_SECONDS": "600",
    "VNB_CAPACITY_MAX_WAIT_SECONDS": "1200",
    "VNB_CAPACITY_CORES": "4",
    "VNB_PERMISSION_GRACE_SECONDS": "60",
}
STATE_OF_TYPE = {
    "io.vnodebatch.job.succeeded": State.SUCCEEDED,
    "io.vnodebatch.job.failed": State.FAILED,
    "io.vnodebatch.request.rejected": State.REJECTED,
    "io.vnodebatch.request.deadlettered": State.DEADLETTERED,
    "io.vnodebatch.request.cancelled": State.CANCELLED,
    "io.vnodebatch.job.cancelled": State.CANCELLED,
}


def model_settings(**overrides: str) -> Settings:
    return Settings.from_env(make_env(**{**ENV, **overrides}))


class Crash(Exception):
    """The process died here (not a VnbError: nothing in the app expects it)."""


# --- the queues and the host ----------------------------------------------------------------


@dataclass
class Message:
    id: str
    body: bytes
    dequeue_count: int = 0
    inserted_at: datetime = T0
    poison: bool = False
    crashes: int = 0


@dataclass
class Sent:
    """One event written to the events queue, and by whom."""

    event: dict[str, Any]
    by: str
    step: int


class Admission:
    """The capacity view dispatch asks (``shared.capacity.admission.Admission``'s calls): all or nothing."""

    def __init__(self) -> None:
        self.open = True
        self.on_admit: Callable[[], object] | None = None
        """Another actor that runs once, between dispatch's ledger read and its create."""
        self._tickets = itertools.count(1)

    def admit(
        self,
        source: Any,
        demand: Any,
        *,
        key: str,
        first_seen: datetime,
        now: datetime,
        job: str = "",
        team: str = "",
        priority: str = "normal",
        wakeable: bool = False,
    ) -> Decision:
        if self.on_admit is not None:
            hook, self.on_admit = self.on_admit, None
            hook()
        if self.open:
            return Decision(True, ticket=next(self._tickets))
        return Decision(False, reason="waiting for capacity: cores", delay=5)

    def created(self, ticket: int) -> None:
        pass

    def refund(self, ticket: int) -> None:
        pass


@dataclass
class World:
    settings: Settings = field(default_factory=model_settings)
    step: int = 0
    clock: datetime = T0

    def __post_init__(self) -> None:
        self.table = MemTable(self)
        self.ledger = Ledger(self.table)
        self.cluster = Cluster(self)
        self.admission = Admission()
        self.ready = True
        self.queue: list[Message] = []
        self.sent: list[Sent] = []
        self.send_fails = 0
        self.crash_after_send = 0
        self.enqueue_fails = 0
        self.enqueue_lost = 0
        """The app's next queue sends that take effect with their answer lost (a requeue sent twice)."""
        self.stranded: list[Message] = []
        """Poison-queue messages the host skips for good (failed maxDequeueCount times)."""
        self._ids = itertools.count(1)
        self.api = RequestsApi(
            settings=self.settings,
            ledger=self.ledger,
            enqueue=self.enqueue,
            send_event=self.send_event,
            cluster=lambda: self.cluster,  # type: ignore[arg-type,return-value]
            now=self.now,
        )

    def now(self) -> datetime:
        return self.clock

    def message_id(self) -> str:
        return f"00000000-0000-4000-a000-{next(self._ids):012d}"

    # queue side
    def produce(self, text: str | bytes) -> Message:
        """A producer's send (not the app's: it does not meet the app's injected faults)."""
        raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        self.queue.append(Message(self.message_id(), raw, inserted_at=self.clock))
        return self.queue[-1]

    def _queue_send(self, body: bytes, *, poison: bool = False) -> None:
        """The app's own queue send (a requeue, an API submit, a parked poison body): may fail."""
        if self.enqueue_fails > 0:
            self.enqueue_fails -= 1
            raise TransientError("injected: queue send failed (503)", status=503)
        self.queue.append(Message(self.message_id(), body, inserted_at=self.clock, poison=poison))
        if self.enqueue_lost > 0:
            self.enqueue_lost -= 1
            raise TransientError("injected: queue send took effect, its answer was lost (500)", status=500)

    def enqueue(self, text: str) -> None:
        self._queue_send(text.encode())

    def park(self, body: bytes, delay: int) -> None:
        """The deadletter function's send of a body back to the poison queue (a new message)."""
        self._queue_send(body, poison=True)

    def requeue(self, text: str, delay: int) -> None:
        self.enqueue(text)

    def send_event(self, text: str) -> None:
        """The queue client's send (reconciler, API): fails before sending, or crashes after."""
        if self.send_fails > 0:
            self.send_fails -= 1
            raise TransientError("injected: events queue send failed (503)", status=503)
        self.sent.append(Sent(json.loads(text), "client", self.step))
        if self.crash_after_send > 0:
            self.crash_after_send -= 1
            raise Crash("the process died right after sending")

    def gate(self) -> Any:
        world = self

        class Gate:
            def check(self) -> Readiness:
                if world.ready:
                    return Readiness(cluster=world.cluster, reason="ready")  # type: ignore[arg-type]
                return Readiness(cluster=None, reason="cluster: Creating")

        return Gate()

    def deliver(self, message: Message, *, crash: bool = False) -> str:
        """One invocation of a queue function on ``message``, with the host's rules around it.
        ``crash``: the process dies after the function ran, before the host wrote its events."""
        message.dequeue_count += 1
        if message.poison and message.dequeue_count > MAX_DEQUEUE:
            # The poison queue has no poison queue: past maxDequeueCount the host skips the message
            # without deleting it (QueueProcessor.BeginProcessingMessageAsync; shared.flows.deadletter).
            self.queue.remove(message)
            self.stranded.append(message)
            return "stranded"
        try:
            if message.poison:
                event = deadletter(
                    Inbound(message.id, message.body, message.dequeue_count, message.inserted_at),
                    settings=self.settings,
                    now=self.clock,
                    ledger=self.ledger,
                    park=self.park,
                )
                texts = [event] if event is not None else []
            else:
                result = dispatch(
                    Inbound(message.id, message.body, message.dequeue_count, message.inserted_at),
                    settings=self.settings,
                    gate=self.gate(),
                    requeue=self.requeue,
                    now=self.now,
                    ledger=self.ledger,
                    admission=self.admission,  # type: ignore[arg-type]
                )
                texts = result.events
            if crash:
                raise Crash("the worker died before the host wrote the outputs")
        except (TransientError, Crash):
            if message.poison:  # not released: delivered again when its lease lapses
                return "retry"
            if message.dequeue_count >= MAX_DEQUEUE:
                self.queue.remove(message)
                self.queue.append(Message(self.message_id(), message.body, inserted_at=self.clock, poison=True))
                return "poisoned"
            return "retry"
        self.queue.remove(message)
        for text in texts:
            self.sent.append(Sent(json.loads(text), "binding", self.step))
        return "done"

    def reconcile(self, *, sweep: bool = False) -> Any:
        """One timer run: a reconcile pass, then (as ``reconcile.run`` does at each sweep) the
        kept events a DELETE cut short left unsent. ``sweep``: also delete reported Jobs (the
        app's sweep, at most once a minute: a Job marked reported whose delete never came)."""
        report = reconcile(
            settings=self.settings,
            jobs=self.cluster,  # type: ignore[arg-type]
            send_event=self.send_event,
            now=self.now,
            workers=1,
            sweep=sweep,
            ledger=self.ledger,
            requeue=self.requeue,
        )
        try:
            flush(self.ledger, self.send_event, self.clock)
        except (TransientError, Crash):
            pass  # the next run retries
        return report
