"""Follow-up reconcile passes: outcomes within seconds while Jobs are in flight, nothing extra when idle.

The reconcile timer (``*/30`` on Azure) is the backstop: alone it reports a finished Job 15 s
later on average. While Jobs are in flight a *chain* of follow-up passes runs instead: each pass
that leaves unreported Jobs queues one message on ``VNB_FOLLOWUP_QUEUE``, invisible for
``VNB_FOLLOWUP_SECONDS``, and the queue trigger on it runs the next pass. When no Job is left the
chain ends, so an idle app runs only the timer. A chain starts when dispatch creates a Job and
when a timer pass leaves Jobs unreported (a lost chain is restarted within one timer period).

One lease serializes every pass, however many instances run: an entity in the ledger's table
(PartitionKey ``$cluster``, RowKey ``followup|<subscription>|<group>|<cluster>``) with the
chain's *generation*, ``Running`` (a pass holds it) and ``Until`` (when the holder's claim
lapses: a queued message's delay plus a grace, or a pass's ``PASS_HOLD_SECONDS``). Every change
is a compare-and-swap (``If-Match`` ETag), so of two instances racing for one change one wins.

* A follow-up message carries the generation it continues. Its handler claims the lease
  (``Running``) before its pass; a message of another generation, or one whose generation is
  already being run (a second delivery), is dropped without a pass.
* The timer passes only when the lease is free: while a chain is alive the chain reports; the
  timer's own pass claims the lease like a follow-up.
* After a pass: Jobs left → the next generation, not running, ``Until`` = delay + grace, and its
  message; none left → released (``Until`` = now). Dispatch starts a chain only on a free lease.

Why passes never overlap: reconcile was built for one pass at a time (the timer is a singleton
across instances). Two passes at once could both give a capacity-refused request back to the
queue (``shared.capacity.give_back``: the second reads the Job after the first condemned it; the
soak saw a Job created twice that way), and send more repeats of an event. A worker killed
mid-pass leaves the lease held until ``Until``: reporting resumes within ``PASS_HOLD_SECONDS``
(the host's functionTimeout), with the timer.

Cost: docs/performance.md section 4 (executions per month, idle and busy).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
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
from shared.flows.reconcile_pass import ReconcileReport

log = logging.getLogger("vnode_batch.followup")

LEASE_GRACE_SECONDS = 15
"""How long past its visibility delay a chain's message may take to be handled before a new chain
may start: the queue listener's back-off (≤ maxPollingInterval, 2 s) plus a slow instance start."""
PASS_HOLD_SECONDS = 300
"""A pass's claim on the lease lapses after this: host.json's functionTimeout (5 minutes), which
no invocation outlives (the reconcile pass itself stops starting pages after 240 s)."""
RELEASE_ATTEMPTS = 3
"""Writes tried to release the lease after a pass (a second apart: a storage restart's gap)."""
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
    running: bool = False

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
        e = found.entity
        return Lease(int(e.get("Generation") or 0), aware(e["Until"]), found.etag, bool(e.get("Running")))

    def start(self, moment: datetime) -> int | None:
        """Start a chain on a free lease (and follow-ups on); the generation started, or None."""
        if self.delay <= 0:
            return None
        lease = self.read()
        if lease is not None and lease.alive(moment):
            return None
        return self._advance(lease, moment)

    def claim(self, lease: Lease | None, moment: datetime, *, generation: int | None = None) -> Lease | None:
        """Hold the lease for one pass (``Running`` for ``PASS_HOLD_SECONDS``); None if it moved first."""
        generation = generation if generation is not None else (lease.generation if lease else 0)
        until = moment + timedelta(seconds=PASS_HOLD_SECONDS)
        try:
            etag = self._write(lease, self._entity(generation, until, running=True))
        except VnbError:
            # The write may have been applied and only its answer lost (storage restarting):
            # the lease would then say Running for PASS_HOLD_SECONDS with nobody to release it,
            # and no pass would run meanwhile (seen in bench/soak.py: 5 minutes without a report
            # after its Azurite restart). Read it back: if it is this claim, it is held.
            found = self.read()
            if found is not None and found.running and (found.generation, found.until) == (generation, until):
                return found
            raise
        return None if etag is None else Lease(generation, until, etag, running=True)

    def after_pass(self, held: Lease, report: ReconcileReport, moment: datetime) -> int | None:
        """Queue the next pass if Jobs are left (its generation), else release; None if none queued."""
        if self.delay > 0 and work_left(report):
            return self._advance(held, moment)
        self.release(held, moment)
        return None

    def release(self, held: Lease, moment: datetime) -> None:
        """Free the lease (``Until`` = now), unless it moved meanwhile. A write that fails is
        tried again, RELEASE_ATTEMPTS times a second apart: a lease left Running holds every pass
        off for PASS_HOLD_SECONDS (a retry of a write that was applied finds the ETag moved)."""
        for attempt in range(1, RELEASE_ATTEMPTS + 1):
            try:
                self._write(held, self._entity(held.generation, moment))
                return
            except VnbError:
                if attempt == RELEASE_ATTEMPTS:
                    raise
                time.sleep(1.0)

    def run(self, held: Lease, run_pass: Callable[[], ReconcileReport], now: Callable[[], datetime]) -> ReconcileReport:
        """``run_pass`` under ``held``; a pass that raises frees the lease first, so the host's retry
        of the message (or the next timer run) passes again at once, not after PASS_HOLD_SECONDS."""
        try:
            return run_pass()
        except BaseException:
            with contextlib.suppress(VnbError):
                self.release(held, now())
            raise

    def _advance(self, lease: Lease | None, moment: datetime) -> int | None:
        generation = (lease.generation if lease else 0) + 1
        until = moment + timedelta(seconds=self.delay + LEASE_GRACE_SECONDS)
        if self._write(lease, self._entity(generation, until)) is None:
            return None
        # Claimed: the message goes out after the CAS. If sending fails the lease still says
        # "alive" until Until, and the next start (dispatch, or the timer) begins a new chain then.
        self._send(message(generation), self.delay)
        return generation

    def _write(self, lease: Lease | None, entity: dict[str, Any]) -> str | None:
        """Insert (no lease yet) or replace ``lease`` (If-Match its ETag): the new ETag, None if it moved."""
        try:
            return self._tables.insert(entity) if lease is None else self._tables.replace(entity, etag=lease.etag)
        except (EntityExists, EntityChanged):
            return None

    def _entity(self, generation: int, until: datetime, *, running: bool = False) -> dict[str, Any]:
        return {
            "PartitionKey": PARTITION,
            "RowKey": self.key,
            "Generation": generation,
            "Until": until.astimezone(UTC),
            "Running": running,
        }


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
    """Handle one follow-up message: claim the lease, the pass, then the next message or the end."""
    generation = generation_of(text)
    lease = chains.read()
    held = None
    if generation is not None and lease is not None and lease.generation == generation and not lease.running:
        held = chains.claim(lease, now())
    if held is None:
        log.info("follow-up %s is stale (lease %s): no pass", generation, lease)
        return FollowUpReport(generation, stale=True)
    report = chains.run(held, run_pass, now)
    return FollowUpReport(generation, report=report, next_generation=chains.after_pass(held, report, now()))


def timer_pass(
    chains: Chains, run_pass: Callable[[], ReconcileReport], now: Callable[[], datetime]
) -> ReconcileReport | None:
    """The reconcile timer's pass, unless a chain is alive (None: the chain reports). A pass that
    leaves Jobs in flight starts a chain (its message was lost, or dispatch's start raced a pass)."""
    if chains.delay <= 0:
        return run_pass()
    try:
        lease = chains.read()
        free = lease is None or not lease.alive(now())
        held = chains.claim(lease, now(), generation=_next(lease)) if free else None
    except VnbError as e:
        # No pass without the lease: a follow-up could claim it when the table is back, mid-pass.
        # Nothing is lost meanwhile: the ledger is in the same table, so no Job could be marked
        # reported anyway (its ledger write fails first and the Job stays for the next pass).
        log.warning("follow-up lease unreadable (%s): no pass this time", e)
        return None
    if held is None:
        log.info("reconcile timer: follow-up passes are reporting (lease %s); no pass", lease)
        return None
    report = chains.run(held, run_pass, now)
    try:
        chains.after_pass(held, report, now())
    except VnbError as e:  # the claim lapses after PASS_HOLD_SECONDS; the timer passes again then
        log.warning("could not release the follow-up lease or start follow-up passes: %s", e)
    return report


def _next(lease: Lease | None) -> int:
    """The timer's claim moves the generation on: a message of a lapsed chain becomes stale."""
    return (lease.generation if lease else 0) + 1


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


@functools.cache
def chains_for(settings: Settings, queues: Queues) -> Chains:
    """One per process (its table client, and the table's creation check, are made once)."""

    def send(text: str, delay: int) -> object:
        return queues.send(settings.followup_queue, text, visibility_timeout=delay, time_to_live=MESSAGE_TTL_SECONDS)

    return Chains(settings, send)
