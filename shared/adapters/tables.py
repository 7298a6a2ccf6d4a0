"""Table-storage adapter: the only module that imports azure.data.tables.

The same storage connection the queues use (``AzureWebJobsStorage``): a connection string
locally (Azurite; ``UseDevelopmentStorage=true`` is expanded to Azurite's default table
endpoint), an identity-based table service URI (``AzureWebJobsStorage__tableServiceUri``)
with DefaultAzureCredential in Azure, where the app's identity holds Storage Table Data
Contributor (infra/app/rbac.bicep).

Writes are conditional: ``insert`` fails if the entity exists, ``replace`` carries the ETag
read with the entity (``MatchConditions.IfNotModified``: HTTP If-Match), so two instances
updating the same request never lose each other's write; the loser re-reads and decides again.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.base.errors import PermanentError, TransientError, VnbError
from shared.config.settings import Settings

if TYPE_CHECKING:  # the SDK is imported on first use, not at cold start (issue 16)
    from azure.core.credentials import TokenCredential
    from azure.core.exceptions import AzureError
    from azure.data.tables import TableClient

_DEV_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; not a secret).
_DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_DEV_CONNECTION = (
    f"DefaultEndpointsProtocol=http;AccountName={_DEV_ACCOUNT};AccountKey={_DEV_KEY};"
    f"TableEndpoint=http://127.0.0.1:10002/{_DEV_ACCOUNT};"
)


class TableError(TransientError):
    """A table call failed in a way a retry may fix (5xx, throttling, connection reset)."""


class EntityExists(VnbError):
    """``insert`` found the entity already there."""


class EntityRefused(PermanentError):
    """Table storage refused the entity itself (400: a bad key or property): retrying the same
    write cannot succeed (Table service error codes: ``InvalidInput``, ``PropertyValueTooLarge``,
    ``OutOfRangeInput``; learn.microsoft.com/rest/api/storageservices/table-service-error-codes)."""


class EntityChanged(VnbError):
    """``replace``/``delete`` met a different ETag (412): someone wrote it since it was read."""


@dataclass(frozen=True)
class Stored:
    entity: dict[str, Any]
    etag: str


@dataclass(frozen=True)
class EntityPage:
    items: list[Stored]
    continuation: dict[str, Any] | None


def network_options(endpoint: str) -> dict[str, Any]:
    """Client options that read the environment's network settings once, for ``endpoint``.

    azure-core's ``RequestsTransport`` leaves ``requests``' ``trust_env`` on (its
    ``use_env_settings``), so every call re-reads the proxy variables, tests ``NO_PROXY`` and
    looks for ~/.netrc (requests ``Session.merge_environment_settings`` → ``get_environ_proxies``,
    ``Session.prepare_request`` → ``get_netrc_auth``): ~9 % of a table call's client CPU here
    (bench/ledger.py; docs/performance.md). The result cannot change within a process for one
    endpoint, so it is resolved here once with the same functions: the proxies
    ``get_environ_proxies`` picks for the endpoint (honouring ``NO_PROXY``), and the CA bundle
    from ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` as requests would. netrc is not consulted:
    storage calls carry their own Authorization (shared key or bearer token).
    """
    from azure.core.pipeline.transport import RequestsTransport
    from requests.utils import get_environ_proxies

    proxies = get_environ_proxies(endpoint)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    options: dict[str, Any] = {"transport": RequestsTransport(use_env_settings=False)}
    if proxies:
        options["proxies"] = dict(proxies)
    if bundle:
        options["connection_verify"] = bundle
    return options


class Tables:
    """One table's client, created on first use and kept per process (the table is created
    on first use too, once per process)."""

    def __init__(self, settings: Settings, table: str | None = None) -> None:
        self._settings = settings
        self._name = table or settings.ledger_table
        self._client: TableClient | None = None
        self._lock = threading.Lock()

    def _credential(self) -> TokenCredential:
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(managed_identity_client_id=self._settings.storage_client_id)

    def client(self) -> TableClient:
        from azure.core.exceptions import (
            AzureError,
            ResourceExistsError,
        )
        from azure.data.tables import TableServiceClient

        with self._lock:
            if self._client is None:
                conn = self._settings.storage_connection
                if conn:
                    if conn.strip().lower().rstrip(";") == "usedevelopmentstorage=true":
                        conn = _DEV_CONNECTION
                    endpoint = TableServiceClient.from_connection_string(conn).url
                    service = TableServiceClient.from_connection_string(conn, **network_options(endpoint))
                else:
                    uri = self._settings.storage_table_uri
                    assert uri  # settings require it with identity connections
                    service = TableServiceClient(uri, credential=self._credential(), **network_options(uri))
                client = service.get_table_client(self._name)
                try:
                    client.create_table()
                except ResourceExistsError:
                    pass
                except AzureError as e:
                    raise _transient(f"creating table {self._name!r}", e) from e
                self._client = client
            return self._client

    def get(self, partition_key: str, row_key: str) -> Stored | None:
        from azure.core.exceptions import (
            AzureError,
            ResourceNotFoundError,
        )

        try:
            entity = self.client().get_entity(partition_key, row_key)
        except ResourceNotFoundError:
            return None
        except AzureError as e:
            raise _transient(f"reading {partition_key!r} from table {self._name!r}", e) from e
        return Stored(dict(entity), str(entity.metadata["etag"]))

    def insert(self, entity: Mapping[str, Any]) -> str:
        """Create the entity; its ETag. EntityExists when it is already there."""
        from azure.core.exceptions import (
            AzureError,
            HttpResponseError,
            ResourceExistsError,
        )

        try:
            meta = self.client().create_entity(dict(entity))
        except ResourceExistsError as e:
            raise EntityExists(f"{entity['PartitionKey']!r} already exists in table {self._name!r}") from e
        except HttpResponseError as e:
            if e.status_code == 400:
                raise EntityRefused(
                    f"table {self._name!r} refused entity {entity['PartitionKey']!r}: {e.message}", status=400
                ) from e
            raise _transient(f"inserting {entity['PartitionKey']!r} into table {self._name!r}", e) from e
        except AzureError as e:
            raise _transient(f"inserting {entity['PartitionKey']!r} into table {self._name!r}", e) from e
        return str(meta["etag"])

    def replace(self, entity: Mapping[str, Any], *, etag: str) -> str:
        """Replace the entity if it still has ``etag``; its new ETag. EntityChanged otherwise."""
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            AzureError,
            HttpResponseError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import UpdateMode

        try:
            meta = self.client().update_entity(
                dict(entity), mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError) as e:
            raise EntityChanged(f"{entity['PartitionKey']!r} changed in table {self._name!r} since it was read") from e
        except HttpResponseError as e:
            if e.status_code == 412:
                raise EntityChanged(f"{entity['PartitionKey']!r} changed since it was read") from e
            if e.status_code == 400:
                raise EntityRefused(
                    f"table {self._name!r} refused entity {entity['PartitionKey']!r}: {e.message}", status=400
                ) from e
            raise _transient(f"updating {entity['PartitionKey']!r} in table {self._name!r}", e) from e
        except AzureError as e:
            raise _transient(f"updating {entity['PartitionKey']!r} in table {self._name!r}", e) from e
        return str(meta["etag"])

    def delete(self, partition_key: str, row_key: str, *, etag: str) -> bool:
        """Delete if unchanged; False when it changed or is already gone."""
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            AzureError,
            HttpResponseError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )

        try:
            self.client().delete_entity(
                partition_key, row_key, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        except HttpResponseError as e:
            if e.status_code == 412:
                return False
            raise _transient(f"deleting {partition_key!r} from table {self._name!r}", e) from e
        except AzureError as e:
            raise _transient(f"deleting {partition_key!r} from table {self._name!r}", e) from e
        return True

    def query(
        self,
        query_filter: str,
        *,
        parameters: Mapping[str, Any],
        page_size: int,
        continuation: Mapping[str, Any] | None = None,
    ) -> EntityPage:
        """One page of entities matching ``query_filter`` (OData, ``@name`` parameters)."""
        from azure.core.exceptions import (
            AzureError,
            HttpResponseError,
        )

        try:
            entities = self.client().query_entities(
                query_filter, parameters=dict(parameters), results_per_page=page_size
            )
            # Typed str in azure-core, but Table storage's token is the dict of next partition/row keys.
            token_in: Any = dict(continuation) if continuation else None
            pager = entities.by_page(continuation_token=token_in)
            page = next(pager, None)
            items = [Stored(dict(e), str(e.metadata["etag"])) for e in page] if page is not None else []
            token = getattr(pager, "continuation_token", None)
        except HttpResponseError as e:
            if e.status_code == 400:  # a continuation token Table storage does not accept
                raise ValueError(f"table {self._name!r} refused the query: {e.message}") from e
            raise _transient(f"querying table {self._name!r}", e) from e
        except AzureError as e:
            raise _transient(f"querying table {self._name!r}", e) from e
        return EntityPage(items=items, continuation=dict(token) if token else None)


def _transient(what: str, e: AzureError) -> TableError:
    status = getattr(e, "status_code", None)
    return TableError(f"{what} failed: {getattr(e, 'message', None) or e}", status=status)


@functools.cache
def tables_for(settings: Settings) -> Tables:
    """The process-wide ledger table client for these settings."""
    return Tables(settings)
