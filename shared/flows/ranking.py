"""Each waiting request's place among *all* waiting requests, kept in the ledger by the reconciler.

Why here and not in the dispatcher: a dispatcher instance sees only the requests its own queue
deliveries bring back, so the place it can compute is among those (``WaitingQueue``). The
reconciler's timer runs on one instance at a time per app (Azure Functions timer triggers hold a
blob lease: "only a single instance of a timer function runs across all instances",
learn.microsoft.com/azure/azure-functions/functions-bindings-timer#scale-out), and it already
lists the cluster; so once per pass it reads the ``waiting-for-capacity`` records (one filtered
query per 1,000 records) and places each among all of them (``shared.capacity.ranking``).

Why not an ETag-guarded per-cluster entity holding the waiting list: every deferral of every
instance would read and conditionally write that one entity (a hot partition whose 412s grow with
the instances), and its 1 MiB entity limit would bound how many requests can wait.

Storage calls: reads are one query page per 1,000 waiting requests per pass (amortized a
thousandth of a call per request per pass); a record is written only when its place moved by a
tenth or its estimate by a tenth of the time left (``shared.ledger.records.queue_changed``), with
its ETag (a request admitted meanwhile is left alone: 412, no write) — so its place is written
a number of times that grows with the log of its first place (35 from place 100 to 1, 80 from
10,000), not with the passes. After the first ranking
(``rankedAt`` in ``queue``), the dispatcher stops writing its own, per-instance place.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from shared.base.times import parse_time
from shared.capacity.admission import Admission, CapacitySource
from shared.capacity.ranking import Waiter, places, wants_of
from shared.ledger.records import WAKE, Query, State, iso, query_filter, queue_changed
from shared.ledger.store import Ledger

log = logging.getLogger("vnode_batch.ranking")

KEPT: tuple[str, ...] = ("wants", "priority", WAKE)
"""What the dispatcher wrote that the ranking keeps (and needs on its next pass; ``wake``: the
message's handle, ``shared.flows.wake``)."""


def rank_waiting(ledger: Ledger, admission: Admission, source: CapacitySource, *, now: datetime) -> int:
    """Place every ``waiting-for-capacity`` request among all of them; how many records were
    written. Raises the adapters' ``VnbError`` when Table storage or Kubernetes do not answer."""
    text, params = query_filter(Query(state=State.WAITING_FOR_CAPACITY))
    records = list(ledger.scan(text, params))
    if not records:
        return 0
    endings, free, observed = admission.outlook(source, now)
    epoch = datetime.min.replace(tzinfo=UTC)
    waiters = [
        Waiter(
            key=r.key,
            team=r.team,
            priority=str((r.queue or {}).get("priority") or "normal"),
            since=parse_time(r.received_at) or epoch,
            wants=wants_of(r.queue),
        )
        for r in records
    ]
    placed = places(waiters, endings=endings, free=free, now=now, observed=observed)
    written = 0
    for record in records:
        before = record.queue or {}
        after: dict[str, Any] = {k: before[k] for k in KEPT if k in before}
        after.update(placed[record.key])
        after["rankedAt"] = iso(now)
        if "rankedAt" in before and not queue_changed(before, after, now=now):
            continue
        ledger.note_queue(record, after)
        written += 1
    log.info("ranked %d waiting request(s), %d place(s) written", len(records), written)
    return written
