"""The ledger table of the model world: ``TableStore`` in memory, with Table storage's 400 rules
and injected transient faults (split from ``tests.model.world``)."""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shared.adapters.tables import EntityChanged, EntityExists, EntityPage, EntityRefused, Stored, TableError
from shared.ledger.records import TERMINAL, from_entity

if TYPE_CHECKING:
    from tests.model.world import World

# --- the ledger table ---------------------------------------------------------------------

_BAD_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


class MemTable:
    """``TableStore`` in memory: ETags, insert-if-absent, replace-if-ETag, Table storage's 400
    rules for keys and strings, injected transient faults, and a note of when each key turned
    terminal (the step counter of the world)."""

    def __init__(self, world: World | None = None) -> None:
        self.rows: dict[str, tuple[dict[str, Any], str]] = {}
        self.fail_next = 0
        self._etags = itertools.count(1)
        self.world = world
        self.terminal_at: dict[str, int] = {}
        self.calls = 0

    def _fault(self, what: str) -> None:
        self.calls += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            raise TableError(f"injected: {what} failed (503)", status=503)

    @staticmethod
    def _check(entity: Mapping[str, Any]) -> None:
        # Table service: PartitionKey/RowKey may not hold / \ # ? or control characters and are at
        # most 1 KiB; a string property is at most 64 KiB (32 K UTF-16 characters); the request is
        # UTF-8 (learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model).
        for name in ("PartitionKey", "RowKey"):
            value = str(entity[name])
            if _BAD_KEY.search(value) or len(value.encode("utf-8", "surrogatepass")) > 1024:
                raise EntityRefused(f"400 InvalidInput: {name}", status=400)
        for name, value in entity.items():
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise EntityRefused(f"400 InvalidInput: {name} is not UTF-8", status=400) from None
                if len(value.encode("utf-16-le")) > 64 * 1024:
                    raise EntityRefused(f"400 PropertyValueTooLarge: {name}", status=400)

    def _note(self, entity: Mapping[str, Any]) -> None:
        if entity.get("state") in {s.value for s in TERMINAL}:
            key = str(entity["key"])
            self.terminal_at.setdefault(key, self.world.step if self.world else 0)

    def get(self, partition_key: str, row_key: str) -> Stored | None:
        self._fault("get")
        row = self.rows.get(partition_key)
        return None if row is None else Stored(copy.deepcopy(row[0]), row[1])

    def insert(self, entity: Mapping[str, Any]) -> str:
        self._fault("insert")
        self._check(entity)
        pk = str(entity["PartitionKey"])
        if pk in self.rows:
            raise EntityExists(pk)
        etag = f"e{next(self._etags)}"
        self.rows[pk] = (copy.deepcopy(dict(entity)), etag)
        self._note(entity)
        return etag

    def replace(self, entity: Mapping[str, Any], *, etag: str) -> str:
        self._fault("replace")
        self._check(entity)
        pk = str(entity["PartitionKey"])
        row = self.rows.get(pk)
        if row is None or row[1] != etag:
            raise EntityChanged(pk)
        new = f"e{next(self._etags)}"
        self.rows[pk] = (copy.deepcopy(dict(entity)), new)
        self._note(entity)
        return new

    def delete(self, partition_key: str, row_key: str, *, etag: str) -> bool:
        self._fault("delete")
        row = self.rows.get(partition_key)
        if row is None or row[1] != etag:
            return False
        del self.rows[partition_key]
        return True

    def query(
        self,
        query_filter: str,
        *,
        parameters: Mapping[str, Any],
        page_size: int,
        continuation: Mapping[str, Any] | None = None,
    ) -> EntityPage:
        """The filters ``shared.ledger.records.query_filter`` and ``Ledger.purge`` write:
        ``A eq 'x'`` and ``A eq|ge|lt @p`` joined by ``and``; continuation = next PartitionKey."""
        self._fault("query")
        tests: list[Callable[[Mapping[str, Any]], bool]] = []
        for part in query_filter.split(" and "):
            name, op, value = part.split(" ", 2)
            want = value.strip("'") if value.startswith("'") else parameters[value.lstrip("@")]
            ops = {"eq": lambda a, b: a == b, "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b}
            tests.append(
                lambda e, n=name, o=ops[op], w=want: n in e and o(str(e[n]), str(w))  # type: ignore[misc]
            )
        start = str((continuation or {}).get("PartitionKey") or "")
        keys = sorted(k for k in self.rows if k >= start)
        hits = [k for k in keys if all(t(self.rows[k][0]) for t in tests)]
        page, more = hits[:page_size], hits[page_size:]
        items = [Stored(copy.deepcopy(self.rows[k][0]), self.rows[k][1]) for k in page]
        return EntityPage(items=items, continuation={"PartitionKey": more[0]} if more else None)

    def records_by_pk(self, partition_key: str) -> Any:
        entity, etag = self.rows[partition_key]
        return from_entity(entity, etag=etag)

    def records(self) -> dict[str, Any]:
        return {str(e["key"]): from_entity(e, etag=t) for e, t in self.rows.values()}
