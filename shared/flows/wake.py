"""Wake waiting requests when capacity frees (the reconciler's step after each pass).

Why: a request that does not fit goes back to the queue invisible for a while
(``shared.flows.dispatch``). Polling — every waiting request asking again every few seconds —
wastes the capacity that frees between two asks (measured in docs/performance.md §8: up to a
fifth of the quota idle while requests that would fit slept) and costs a queue round trip and a
ledger read per ask. Instead the dispatcher keeps each deferred message's handle in the ledger
(``queue.wake``: id and pop receipt, ``shared.base.handles``) and lets it sleep up to
VNB_CAPACITY_SLEEP_SECONDS; the reconciler — which deletes finished Jobs' pods, so it is the one
that frees capacity — looks after each pass: when the budget has room, it reads the waiting
records (one query page per 1,000) and makes visible the messages of the requests admission would
take now, in admission's order (``shared.capacity.wake``).

Safety: waking is a hint. A woken message is the same message; the dispatcher admits it against
its own view as always, and the queue's pop receipts make a handle wake its message at most once
(a stale one answers 400/404). A wake that fails leaves the message to its own delay.

Not waking the same request over and over: a woken request counts as holding what it wants until
its message is back (its record's handle changes, or it leaves ``waiting-for-capacity``), for at
most VNB_CAPACITY_DEFER_SECONDS; one that was woken and put back again is woken again only after a
back-off (VNB_CAPACITY_DEFER_SECONDS doubling per try, up to VNB_CAPACITY_SLEEP_SECONDS), so an
instance whose admission disagrees (its own sample of who waits) cannot make it spin.

Storage calls: nothing while the budget is full; otherwise one query page per 1,000 waiting
requests per pass, and one Update Message per request woken.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.base.errors import VnbError
from shared.base.handles import MessageHandle
from shared.base.times import parse_time
from shared.capacity.admission import Admission, CapacitySource
from shared.capacity.fairshare import Held
from shared.capacity.ranking import wants_of
from shared.capacity.wake import Sleeper, choose
from shared.config.settings import Settings
from shared.ledger.records import WAKE, Query, Record, State, query_filter
from shared.ledger.store import Ledger

log = logging.getLogger("vnode_batch.wake")

Waker = Callable[[MessageHandle], bool]
"""Make the message visible now; False when the handle no longer holds (``Queues.wake``)."""


@dataclass
class _Woken:
    receipt: str
    at: float
    wants: Held
    team: str | None
    tries: int
    visible: bool
    """The wake took effect (a stale handle's message is already on its way: nothing to charge)."""


class Wakes:
    """This process's memory of the requests it woke (one per cluster; thread-safe)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._woken: dict[str, _Woken] = {}

    def step(self, ledger: Ledger, admission: Admission, source: CapacitySource, wake: Waker, *, now: datetime) -> int:
        """Wake the waiting requests admission would take now; how many were woken.

        Raises the adapters' ``VnbError`` when Kubernetes or Table storage do not answer (the next
        pass tries again); a failed wake of one message is logged and skipped."""
        with self._lock:
            standing = admission.standing(source, now)
            if not standing.free():
                return 0
            clock = self._clock()
            records = _waiting(ledger)
            self._forget(records, clock)
            pending = self._pending(records, clock)
            for w in pending.values():
                standing.used = standing.used.plus(w.wants)
                standing.creates -= w.wants.groups
                if w.team:
                    standing.held[w.team] = standing.held.get(w.team, Held()).plus(w.wants)
            if not standing.free():
                return 0
            sleepers: list[Sleeper] = []
            unwakeable: list[Sleeper] = []  # still waiting as admission sees them (fair share, urgent)
            handles: dict[str, MessageHandle] = {}
            for r in records:
                handle = MessageHandle.of((r.queue or {}).get(WAKE))
                sleeper = _sleeper(r)
                if not sleeper.wants.groups:
                    continue
                if handle is None or not self._may_wake(r.key, handle, clock):
                    if r.key not in pending:  # a pending wake is charged as held already
                        unwakeable.append(sleeper)
                    continue
                handles[r.key] = handle
                sleepers.append(sleeper)
            woken = 0
            for pick in choose(sleepers, standing, admission.shares, unwakeable=unwakeable):
                handle = handles[pick.key]
                try:
                    ok = wake(handle)
                except VnbError as e:
                    log.warning("waking request %s failed (its own delay brings it back): %s", pick.key, e)
                    continue
                before = self._woken.get(pick.key)
                tries = (before.tries if before else 0) + 1
                self._woken[pick.key] = _Woken(handle.pop_receipt, clock, pick.wants, pick.team, tries, ok)
                woken += ok
            if woken:
                log.info("woke %d waiting request(s) for the capacity that freed", woken)
            return woken

    def _pending(self, records: list[Record], clock: float) -> dict[str, _Woken]:
        """Woken requests whose message is not back yet (charged as if admitted), by key: still
        waiting with the handle that woke them, for at most VNB_CAPACITY_DEFER_SECONDS. One that
        was admitted left ``waiting-for-capacity`` (its Job is counted by the capacity view), one
        put back again has a new handle: neither is charged twice."""
        defer = self._settings.capacity_defer_seconds
        receipts = {r.key: h.pop_receipt for r in records if (h := MessageHandle.of((r.queue or {}).get(WAKE)))}
        return {
            k: w for k, w in self._woken.items() if w.visible and clock - w.at < defer and receipts.get(k) == w.receipt
        }

    def _forget(self, records: list[Record], clock: float) -> None:
        """Drop what no longer waits, and what was woken longer ago than any back-off."""
        waiting = {r.key for r in records}
        longest = max(self._settings.capacity_sleep_seconds, self._settings.capacity_defer_seconds)
        self._woken = {k: w for k, w in self._woken.items() if k in waiting and clock - w.at < 2 * longest}

    def _may_wake(self, key: str, handle: MessageHandle, clock: float) -> bool:
        before = self._woken.get(key)
        if before is None:
            return True
        if before.receipt == handle.pop_receipt:
            return False  # this message was woken already (its handle is spent)
        defer = self._settings.capacity_defer_seconds
        back_off = min(float(self._settings.capacity_sleep_seconds), float(defer * 2 ** (before.tries - 1)))
        return clock - before.at >= back_off


def _waiting(ledger: Ledger) -> list[Record]:
    text, params = query_filter(Query(state=State.WAITING_FOR_CAPACITY))
    return list(ledger.scan(text, params))


def _sleeper(record: Record) -> Sleeper:
    epoch = datetime.min.replace(tzinfo=UTC)
    return Sleeper(
        key=record.key,
        team=record.team,
        priority=str((record.queue or {}).get("priority") or "normal"),
        since=parse_time(record.received_at) or epoch,
        wants=wants_of(record.queue),
    )


_lock = threading.Lock()
_wakes: dict[tuple[str, Settings], Wakes] = {}


def wakes_for(settings: Settings, cluster_key: str) -> Wakes:
    """The process-wide :class:`Wakes` for this cluster (``host|namespace``) and settings."""
    with _lock:
        found = _wakes.get((cluster_key, settings))
        if found is None:
            found = _wakes[(cluster_key, settings)] = Wakes(settings)
        return found
