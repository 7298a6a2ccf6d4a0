"""The idle-stop power record (``shared.cluster.power.PowerRecord``) in the ledger's table, ETag-guarded.

One entity per cluster, in the request ledger's table (``VNB_LEDGER_TABLE``) but outside its
request rows (PartitionKey ``$cluster``, RowKey ``power|<subscription>|<group>|<cluster>``; the
ledger only ever reads ``RowKey eq 'request'``). Table storage is reachable while the cluster is
stopped (unlike anything inside Kubernetes), and its optimistic concurrency is the
compare-and-swap the idle policy needs: a replace carries ``If-Match: <ETag>`` and fails with
412 if another instance wrote first, an insert of an existing entity fails with 409
(learn.microsoft.com/rest/api/storageservices/update-entity2, insert-entity), both through
``shared.adapters.tables.Tables``.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC
from typing import Any

from shared.adapters.tables import EntityChanged, EntityExists, Tables, tables_for
from shared.base.times import aware
from shared.cluster.power import Phase, PowerRecord
from shared.config.settings import Settings

PARTITION = "$cluster"
_UNSAFE_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def row_key(settings: Settings, kind: str = "power") -> str:
    """One record of each kind per cluster: ``<kind>|<subscription>|<resource group>|<cluster>`` (lower case)."""
    raw = f"{kind}|{settings.subscription_id}|{settings.resource_group}|{settings.cluster_name}".lower()
    return _UNSAFE_KEY.sub("_", raw)


class PowerStore:
    """Read and compare-and-swap the power record of the settings' cluster."""

    def __init__(self, settings: Settings, tables: Tables | None = None) -> None:
        self._tables = tables or tables_for(settings)
        self._key = row_key(settings)

    def read(self) -> tuple[PowerRecord | None, str | None]:
        """The record and its ETag, or (None, None) before the first write."""
        found = self._tables.get(PARTITION, self._key)
        if found is None:
            return None, None
        return _record(found.entity), found.etag

    def create(self, record: PowerRecord) -> bool:
        """Insert; False if another instance created it first."""
        try:
            self._tables.insert(_entity(self._key, record))
        except EntityExists:
            return False
        return True

    def swap(self, record: PowerRecord, etag: str) -> bool:
        """Replace only if unchanged since read (``If-Match``); False if another instance wrote first."""
        try:
            self._tables.replace(_entity(self._key, record), etag=etag)
        except EntityChanged:
            return False
        return True


def _entity(key: str, record: PowerRecord) -> dict[str, Any]:
    return {
        "PartitionKey": PARTITION,
        "RowKey": key,
        "Phase": str(record.phase),
        "Since": record.since.astimezone(UTC),
        "LastActivity": record.last_activity.astimezone(UTC),
        "Reason": record.reason[:1000],
    }


def _record(entity: Any) -> PowerRecord:
    return PowerRecord(
        phase=Phase(str(entity.get("Phase") or "running")),
        since=aware(entity["Since"]),
        last_activity=aware(entity["LastActivity"]),
        reason=str(entity.get("Reason") or ""),
    )


@functools.cache
def power_store_for(settings: Settings) -> PowerStore:
    return PowerStore(settings)
