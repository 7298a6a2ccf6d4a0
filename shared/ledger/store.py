"""The request ledger: reads and compare-and-swap writes of ``shared.ledger.records`` records.

Every write is conditional (insert-if-absent, or replace-if-ETag-unchanged), and every step
is computed from what was read (``shared.ledger.records.advance``), so:

* a repeated step (redelivery, a second reconcile pass) finds the state already reached and
  writes nothing;
* two instances racing on one key: one write wins, the other gets 412, re-reads, and either
  finds its step already done or applies it on top;
* a crash between two steps leaves the last completed state, and the next step (or the
  reconciler) moves it on: nothing is lost, and the dispatcher never creates a Job for a key
  the ledger has finished.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from shared.adapters.tables import EntityChanged, EntityExists, EntityPage, Stored, tables_for
from shared.base.errors import TransientError
from shared.config.settings import Settings
from shared.ledger.records import (
    ROW_KEY,
    Query,
    Record,
    State,
    advance,
    decode_page_token,
    encode_page_token,
    from_entity,
    iso,
    partition_key,
    query_filter,
    to_entity,
)

log = logging.getLogger("vnode_batch.ledger")

CAS_ATTEMPTS = 8
"""Re-reads after a 412 before giving up (transient: the host retries the message)."""


class TableStore(Protocol):
    """The table calls the ledger makes (``shared.adapters.tables.Tables``)."""

    def get(self, partition_key: str, row_key: str) -> Stored | None: ...

    def insert(self, entity: Mapping[str, Any]) -> str: ...

    def replace(self, entity: Mapping[str, Any], *, etag: str) -> str: ...

    def delete(self, partition_key: str, row_key: str, *, etag: str) -> bool: ...

    def query(
        self,
        query_filter: str,
        *,
        parameters: Mapping[str, Any],
        page_size: int,
        continuation: Mapping[str, Any] | None = None,
    ) -> EntityPage: ...


class Ledger:
    """Reads and conditional writes of request records."""

    def __init__(self, store: TableStore) -> None:
        self.store = store

    def get(self, key: str) -> Record | None:
        found = self.store.get(partition_key(key), ROW_KEY)
        if found is None:
            return None
        record = from_entity(found.entity, etag=found.etag)
        return record if record.key == key else None

    def create(self, record: Record) -> tuple[Record, bool]:
        """Insert ``record`` unless the key is already there; (what is stored, whether inserted)."""
        for _ in range(CAS_ATTEMPTS):
            try:
                etag = self.store.insert(to_entity(record))
            except EntityExists:
                existing = self.get(record.key)
                if existing is not None:
                    return existing, False
                continue  # purged between the two calls: insert again
            return _with_etag(record, etag), True
        raise TransientError(f"ledger: key {record.key!r} kept changing while being created")

    def swap(self, current: Record, nxt: Record) -> Record | None:
        """Replace ``current`` (read with its ETag) by ``nxt``; None when it changed since (412)."""
        assert current.etag is not None
        assert current.key == nxt.key
        try:
            etag = self.store.replace(to_entity(nxt), etag=current.etag)
        except EntityChanged:
            return None
        return _with_etag(nxt, etag)

    def move(
        self,
        key: str,
        target: State,
        now: datetime,
        *,
        create: Callable[[], Record] | None = None,
        job_name: str | None = None,
        reason: str | None = None,
        attempts: int | None = None,
        outcome: Mapping[str, Any] | None = None,
        known: Record | None = None,
        requeued: bool = False,
    ) -> Record | None:
        """Move ``key`` to ``target`` (a no-op when not allowed or already there) and return the
        stored record; when the key is unknown, insert ``create()`` if given, else return None.

        ``known``: the record as the caller just read or wrote it (with its ETag): the first
        attempt starts from it instead of reading again; a stale one only costs a 412 and a read,
        or, when the move is a no-op from it, one read (the record returned is the stored one:
        dispatch's check after its create relies on it to see a request that ended meanwhile).
        ``requeued``: a capacity give-back (``shared.ledger.records.allowed``).
        """
        for _ in range(CAS_ATTEMPTS):
            given = known is not None and known.etag is not None and known.key == key
            current = known if given else self.get(key)
            known = None
            if current is None:
                if create is None:
                    return None
                record, inserted = self.create(create())
                if inserted:
                    log.info("ledger: %s recorded as %s", key, record.state)
                    return record
                current = record
            nxt = advance(
                current,
                target,
                now,
                job_name=job_name,
                reason=reason,
                attempts=attempts,
                outcome=outcome,
                requeued=requeued,
            )
            if nxt is None:
                if given:
                    # A no-op from what the caller read is no answer: the stored record may have
                    # moved on since (a capacity retry read "submitted", the request then ended).
                    continue
                return current
            assert current.etag is not None
            try:
                etag = self.store.replace(to_entity(nxt), etag=current.etag)
            except EntityChanged:
                continue
            log.info("ledger: %s %s → %s", key, current.state, target)
            return _with_etag(nxt, etag)
        raise TransientError(f"ledger: key {key!r} kept changing while moving it to {target}")

    def note_queue(self, record: Record, queue: Mapping[str, Any]) -> bool:
        """Keep a waiting request's position and estimated start (one conditional write; skipped
        when the record changed meanwhile — the next deferral writes a fresher one). False only
        when that ETag no longer held (412): a caller whose write must land reads and tries again."""
        if record.state != State.WAITING_FOR_CAPACITY or record.etag is None:
            return True
        try:
            self.store.replace(to_entity(replace(record, queue=dict(queue))), etag=record.etag)
        except EntityChanged:
            return False
        return True

    def list(self, query: Query, *, limit: int, page_token: str | None = None) -> tuple[list[Record], str | None]:
        """One page of records matching ``query`` and the token of the next page (None: last).

        ValueError when ``page_token`` is not one this API returned.
        """
        continuation = decode_page_token(page_token) if page_token else None
        text, params = query_filter(query)
        page = self.store.query(text, parameters=params, page_size=limit, continuation=continuation)
        records = [from_entity(s.entity, etag=s.etag) for s in page.items]
        return records, encode_page_token(page.continuation) if page.continuation else None

    def scan(self, text: str, params: Mapping[str, Any], *, page_size: int = 1000) -> Iterator[Record]:
        """Every record matching the OData filter ``text``, page by page (one query per page)."""
        token: Mapping[str, Any] | None = None
        while True:
            page = self.store.query(text, parameters=params, page_size=page_size, continuation=token)
            yield from (from_entity(s.entity, etag=s.etag) for s in page.items)
            token = page.continuation
            if not token:
                return

    def pending(self, before: datetime, *, limit: int = 100) -> tuple[Record, ...]:
        """Records whose claimed event is kept, not known sent, since before ``before``
        (``shared.ledger.outcome_writer.flush``)."""
        text = "RowKey eq @row and pendingSince lt @before"
        page = self.store.query(text, parameters={"row": ROW_KEY, "before": iso(before)}, page_size=limit)
        return tuple(from_entity(s.entity, etag=s.etag) for s in page.items)

    def purge(self, before: datetime, *, page_size: int = 200) -> int:
        """Delete records not updated since ``before`` (the retention bound); how many."""
        text = "RowKey eq @row and updatedAt lt @before"
        params = {"row": ROW_KEY, "before": iso(before)}
        deleted, token = 0, None
        while True:
            page = self.store.query(text, parameters=params, page_size=page_size, continuation=token)
            for stored in page.items:
                # Conditional: a record updated since the query (a late redelivery) is kept.
                if self.store.delete(str(stored.entity["PartitionKey"]), ROW_KEY, etag=stored.etag):
                    deleted += 1
            token = page.continuation
            if not token:
                return deleted


def _with_etag(record: Record, etag: str) -> Record:
    return replace(record, etag=etag)


@functools.cache
def ledger_for(settings: Settings) -> Ledger:
    """The process-wide ledger for these settings."""
    return Ledger(tables_for(settings))
