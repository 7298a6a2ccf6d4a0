"""Follow-up reconcile passes: outcomes within seconds while Jobs are in flight, nothing extra when idle.

The reconcile timer (``*/30`` on Azure) is the backstop: alone it reports a finished Job 15 s
later on average. While Jobs are in flight a *chain* of follow-up passes runs instead: each pass
that leaves unreported Jobs queues one message on ``VNB_FOLLOWUP_QUEUE``, invisible for
``VNB_FOLLOWUP_SECONDS``, and the queue trigger on it runs the next pass. When no Job is left the
chain ends, so an idle app runs only the timer. A chain starts when dispatch creates a Job and
when a timer pass leaves Jobs unreported (a lost chain is restarted within one timer period).

One chain at a time, however many instances run: a lease entity in the ledger's table
(PartitionKey ``$cluster``, RowKey ``followup|<subscription>|<group>|<cluster>``) holds the
chain's *generation* and ``Until``, the moment by which its message should have been handled.
Every message carries the generation it continues. A pass queues the next message only after a
compare-and-swap (``If-Match`` ETag) moves the lease from its generation to the next, so of two
deliveries of one message, or two instances racing, one continues and the other stops; a
message of an older generation is dropped without a pass. A new chain is started only when the
lease is released (the chain ended) or past ``Until`` (its message was lost), again by CAS.
Passes that overlap (the timer's and a follow-up's) are safe: reconcile is one outcome per Job
under every race (``shared.flows.reconcile``).

Cost: docs/performance.md section 4 (executions per month, idle and busy).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.queues import Queues
from shared.adapters.tables import EntityChanged, EntityExists, Tables, tables_for
from shared.base.errors import VnbError
from shared.base.times import aware
from shared.cluster.power_store import PARTITION, row_key
from shared.config.settings import Settings
from shared.flows.reconcile import ReconcileReport

log = logging.getLogger("vnode_batch.followup")

LEASE_GRACE_SECONDS = 15
"""How long past its visibility delay a chain's message may take to be handled before a new chain
may start: the queue listener's back-off (≤ maxPollingInterval, 2 s) plus a slow instance start."""
MESSAGE_TTL_SECONDS = 300
"""A follow-up message not handled within this is of no use (its lease has long expired)."""
DISPATCH_MEMO_SECONDS = 1.0
"""After seeing a live chain, dispatch does not read the lease again for this long (a burst of
Jobs costs one table read a second per instance, not one per Job)."""


@dataclass(frozen=True)
class Lease:
    generation: int
    until: datetime
    etag: str

    def alive(self, moment: datetime) -> bool:
        return moment < self.until


class Chains:
    """The lease entity and the follow-up queue of the settings' cluster."""

    def __init__(self, settings: Settings, send: Callable[[str, int], object], tables: Tables | None = None) -> None:
        """``send(text, delay)`` queues one follow-up message invisible for ``delay`` seconds."""
        self.delay = settings.followup_seconds
        self._send = send
        self._tables = tables or tables_for(settings)
        self.key = row_key(settings, "followup")

    def read(self) -> Lease | None:
        found = self._tables.get(PARTITION, self.key)
        if found is None:
            return None
        return Lease(int(found.entity.get("Generation") or 0), aware(found.entity["Until"]), found.etag)

    def start(self, moment: datetime) -> int | None:
        """Start a chain unless one is alive (or follow-ups are off); the generation started, or None."""
        if self.delay <= 0:
            return None
        lease = self.read()
        if lease is not None and lease.alive(moment):
            return None
        return self._advance(lease, moment)

    def follow(self, lease: Lease, moment: datetime) -> int | None:
        """Queue the pass after ``lease``'s; None if another pass or chain moved the lease first."""
        if self.delay <= 0:
            self.release(lease, moment)
            return None
        return self._advance(lease, moment)

    def release(self, lease: Lease, moment: datetime) -> bool:
        """End ``lease``'s chain (``Until`` = now), unless the lease moved meanwhile."""
        try:
            self._tables.replace(self._entity(lease.generation, moment), etag=lease.etag)
        except EntityChanged:
            return False
        return True

    def _advance(self, lease: Lease | None, moment: datetime) -> int | None:
        generation = (lease.generation if lease else 0) + 1
        entity = self._entity(generation, moment + timedelta(seconds=self.delay + LEASE_GRACE_SECONDS))
        try:
            if lease is None:
                self._tables.insert(entity)
            else:
                self._tables.replace(entity, etag=lease.etag)
        except (EntityExists, EntityChanged):
            return None
        # Claimed: the message goes out after the CAS. If sending fails the lease still says
        # "alive" until Until, and the next start (dispatch, or the timer) begins a new chain then.
        self._send(message(generation), self.delay)
        return generation

    def _entity(self, generation: int, until: datetime) -> dict[str, Any]:
        return {"PartitionKey": PARTITION, "RowKey": self.key, "Generation": generation, "Until": until.astimezone(UTC)}


def message(generation: int) -> str:
    return json.dumps({"generation": generation})


def generation_of(text: str) -> int | None:
    try:
        value = json.loads(text).get("generation")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def work_left(report: ReconcileReport) -> bool:
    """The pass left Jobs to report soon: in flight, skipped after a transient error, or not reached.
    An aborted pass (cluster not ready or stopped, API down) is left to the timer."""
    return report.aborted is None and bool(report.running or report.retry_later or report.incomplete)


@dataclass
class FollowUpReport:
    generation: int | None
    stale: bool = False
    report: ReconcileReport | None = None
    next_generation: int | None = None


def follow_up(
    text: str, *, chains: Chains, run_pass: Callable[[], ReconcileReport], now: Callable[[], datetime]
) -> FollowUpReport:
    """Handle one follow-up message: the pass, then the next message or the end of the chain."""
    generation = generation_of(text)
    lease = chains.read()
    if generation is None or lease is None or lease.generation != generation:
        log.info("follow-up %s is stale (chain at %s): no pass", generation, lease.generation if lease else None)
        return FollowUpReport(generation, stale=True)
    report = run_pass()
    out = FollowUpReport(generation, report=report)
    if work_left(report):
        out.next_generation = chains.follow(lease, now())
    else:
        chains.release(lease, now())
    return out


def after_timer(report: ReconcileReport, chains: Chains, now: Callable[[], datetime]) -> int | None:
    """A timer pass that left Jobs to report starts a chain if none runs (e.g. its message was lost)."""
    if not work_left(report):
        return None
    try:
        return chains.start(now())
    except VnbError as e:  # the timer's own pass is done; the next timer run tries again
        log.warning("could not start follow-up passes: %s", e)
        return None


_memo_lock = threading.Lock()
_alive_until: dict[str, datetime] = {}


def after_job_created(chains: Chains, now: Callable[[], datetime]) -> int | None:
    """Dispatch created a Job: make sure a chain will report it. Never fails the dispatch."""
    moment = now()
    with _memo_lock:
        if moment < _alive_until.get(chains.key, moment):
            return None
    try:
        started = chains.start(moment)
    except VnbError as e:  # the Job exists; the timer will see it and start a chain
        log.warning("could not start follow-up passes: %s", e)
        return None
    with _memo_lock:
        _alive_until[chains.key] = moment + timedelta(seconds=DISPATCH_MEMO_SECONDS)
    return started


def chains_for(settings: Settings, queues: Queues) -> Chains:
    def send(text: str, delay: int) -> object:
        return queues.send(settings.followup_queue, text, visibility_timeout=delay, time_to_live=MESSAGE_TTL_SECONDS)

    return Chains(settings, send)
