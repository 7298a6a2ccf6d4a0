"""The handle of a waiting request's message (``queue.wake``) survives the reconciler's ranking
write racing the dispatcher's (``shared.ledger.tracking.waiting``, ``shared.flows.ranking``).

The ledger table is ``tests.model.memtable.MemTable`` (Table storage's ETag rules, in memory);
the race is played by a store wrapper that runs the ranking's write between the dispatcher's
read and its write — the window in which both hold the same ETag.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.tables import EntityPage, Stored
from shared.base.handles import MessageHandle
from shared.ledger.records import WAKE, State, new_record
from shared.ledger.store import Ledger
from shared.ledger.tracking import waiting
from tests.model.memtable import MemTable

T0 = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
OLD = MessageHandle("m-1", "receipt-1")
NEW = MessageHandle("m-2", "receipt-2")


class Interleaved:
    """``MemTable`` with ``then`` run once, right after the next ``get`` answers."""

    def __init__(self, inner: MemTable) -> None:
        self.inner = inner
        self.then: Callable[[], None] | None = None

    def get(self, partition_key: str, row_key: str) -> Stored | None:
        found = self.inner.get(partition_key, row_key)
        then, self.then = self.then, None
        if then is not None:
            then()
        return found

    def insert(self, entity: Mapping[str, Any]) -> str:
        return self.inner.insert(entity)

    def replace(self, entity: Mapping[str, Any], *, etag: str) -> str:
        return self.inner.replace(entity, etag=etag)

    def delete(self, partition_key: str, row_key: str, *, etag: str) -> bool:
        return self.inner.delete(partition_key, row_key, etag=etag)

    def query(self, query_filter: str, **kw: Any) -> EntityPage:
        return self.inner.query(query_filter, **kw)


def test_the_new_handle_is_kept_when_the_ranking_writes_the_record_meanwhile() -> None:
    table = Interleaved(MemTable())
    ledger = Ledger(table)
    ledger.create(new_record("r-1", State.RECEIVED, T0))
    waiting(ledger, key="r-1", reason="no room", attempts=0, now=T0, capacity=True, wake=OLD)

    def ranking() -> None:  # the reconciler places the request (shared.flows.ranking: KEPT + place)
        record = ledger.get("r-1")
        assert record is not None
        ledger.note_queue(record, {**(record.queue or {}), "position": 3, "rankedAt": T0.isoformat()})

    # The first message was woken and received, and did not fit again: a new message, a new handle.
    table.then = ranking
    later = T0 + timedelta(seconds=30)
    waiting(ledger, key="r-1", reason="no room", attempts=0, now=later, capacity=True, wake=NEW)

    record = ledger.get("r-1")
    assert record is not None
    assert record.state == State.WAITING_FOR_CAPACITY
    # The old handle is spent (its message was received): keeping it would leave the request
    # asleep for VNB_CAPACITY_SLEEP_SECONDS with nothing able to wake it.
    assert MessageHandle.of((record.queue or {}).get(WAKE)) == NEW
    assert (record.queue or {}).get("position") == 3  # the ranking's place is kept too
