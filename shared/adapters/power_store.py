"""The idle-stop power record in Azure Table storage (``shared.idle.PowerRecord``), ETag-guarded.

One entity per cluster in the table ``vnodebatchpower`` of the app's storage account: reachable
while the cluster is stopped (unlike anything inside Kubernetes), and Table storage's optimistic
concurrency is the compare-and-swap the idle policy needs: an update carries ``If-Match: <ETag>``
and fails with 412 if another instance wrote first (learn.microsoft.com/rest/api/storageservices/
update-entity2: "If-Match ... the entity's ETag ... to perform the operation only if the entity
has not been modified"; an insert of an existing entity fails with 409 EntityAlreadyExists).

Connection: the ``AzureWebJobsStorage`` connection string (``TableEndpoint``), or with an
identity connection the queue service URI's account with ``.table.`` in place of ``.queue.``
(the same storage account; its identity needs Storage Table Data Contributor there).
"""

from __future__ import annotations

import functools
import re
import threading
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.errors import TransientError
from shared.idle import Phase, PowerRecord
from shared.settings import Settings

TABLE = "vnodebatchpower"
PARTITION = "power"
_UNSAFE_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


class PowerStoreError(TransientError):
    pass


def row_key(settings: Settings) -> str:
    """One record per cluster: ``<subscription>|<resource group>|<cluster>`` (lower case)."""
    raw = f"{settings.subscription_id}|{settings.resource_group}|{settings.cluster_name}".lower()
    return _UNSAFE_KEY.sub("_", raw)


def _service(settings: Settings) -> TableServiceClient:
    conn = settings.storage_connection
    if conn:
        return TableServiceClient.from_connection_string(conn)
    from azure.identity import DefaultAzureCredential

    assert settings.storage_queue_uri
    uri = settings.storage_queue_uri.replace(".queue.", ".table.", 1)
    credential = DefaultAzureCredential(managed_identity_client_id=settings.storage_client_id)
    return TableServiceClient(endpoint=uri, credential=credential)


class PowerStore:
    """Read and compare-and-swap the power record of the settings' cluster."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._key = row_key(settings)
        self._client: TableClient | None = None
        self._lock = threading.Lock()

    def _table(self) -> TableClient:
        with self._lock:
            if self._client is None:
                client = _service(self._settings).get_table_client(TABLE)
                try:
                    client.create_table()
                except ResourceExistsError:
                    pass
                except AzureError as e:
                    raise PowerStoreError(f"creating table {TABLE} failed: {e}") from e
                self._client = client
            return self._client

    def read(self) -> tuple[PowerRecord | None, str | None]:
        """The record and its ETag, or (None, None) before the first write."""
        try:
            entity = self._table().get_entity(PARTITION, self._key)
        except ResourceNotFoundError:
            return None, None
        except AzureError as e:
            raise PowerStoreError(f"reading the power record failed: {e}") from e
        return _record(entity), str(entity.metadata.get("etag"))

    def create(self, record: PowerRecord) -> bool:
        """Insert; False if another instance created it first."""
        try:
            self._table().create_entity(_entity(self._key, record))
        except ResourceExistsError:
            return False
        except AzureError as e:
            raise PowerStoreError(f"creating the power record failed: {e}") from e
        return True

    def swap(self, record: PowerRecord, etag: str) -> bool:
        """Replace only if unchanged since read (``If-Match``); False if another instance wrote first."""
        try:
            self._table().update_entity(
                _entity(self._key, record),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        except AzureError as e:
            if getattr(e, "status_code", None) == 412:
                return False
            raise PowerStoreError(f"updating the power record failed: {e}") from e
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


def _aware(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _record(entity: Any) -> PowerRecord:
    return PowerRecord(
        phase=Phase(str(entity.get("Phase") or "running")),
        since=_aware(entity["Since"]),
        last_activity=_aware(entity["LastActivity"]),
        reason=str(entity.get("Reason") or ""),
    )


@functools.cache
def power_store_for(settings: Settings) -> PowerStore:
    return PowerStore(settings)
