"""Settings of storage: the queues (requests, events, follow-ups) and the request ledger table."""

from __future__ import annotations

import re
from typing import Final

from pydantic import field_validator

from shared.config.fields import SettingsGroup, setting

STORAGE_CONNECTION: Final = "AzureWebJobsStorage"
"""The connection name every queue binding uses (a setting *prefix* with identity connections)."""
_QUEUE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_MAX_QUEUE_NAME = 63
_POISON_SUFFIX = "-poison"


class StorageSettings(SettingsGroup):
    """Queues and the ledger table."""

    storage_connection: str | None = setting(
        "AzureWebJobsStorage",
        None,
        "Storage connection for the queues. Locally `UseDevelopmentStorage=true` or an Azurite "
        "connection string; in Azure leave it unset and use the identity form "
        "`AzureWebJobsStorage__queueServiceUri` (+ `__credential`, `__clientId`).",
    )
    storage_queue_uri: str | None = setting(
        "AzureWebJobsStorage__queueServiceUri",
        None,
        "Queue service URI for an identity-based connection (no keys), e.g. "
        "`https://<account>.queue.core.windows.net`.",
    )
    storage_table_uri: str | None = setting(
        "AzureWebJobsStorage__tableServiceUri",
        None,
        "Table service URI of the request ledger for an identity-based connection, e.g. "
        "`https://<account>.table.core.windows.net` (required with `__queueServiceUri`).",
    )
    storage_client_id: str | None = setting(
        "AzureWebJobsStorage__clientId",
        None,
        "Client id of the user-assigned managed identity used for the queues.",
    )
    requests_queue: str = setting(
        "VNB_REQUESTS_QUEUE",
        ...,
        "Queue the dispatch function reads requests from (bound as `%VNB_REQUESTS_QUEUE%`); "
        "poisoned messages go to `<name>-poison`, so at most 56 characters and not ending in `-poison`.",
    )
    events_queue: str = setting(
        "VNB_EVENTS_QUEUE",
        ...,
        "Queue that receives one CloudEvent per request outcome (bound as `%VNB_EVENTS_QUEUE%`).",
    )
    followup_queue: str = setting(
        "VNB_FOLLOWUP_QUEUE",
        ...,
        "Queue of the follow-up reconcile passes (bound as `%VNB_FOLLOWUP_QUEUE%`): while Jobs are in "
        "flight, each pass queues the next one, so outcomes are reported within seconds; nothing is queued when idle.",
    )
    event_source: str = setting("VNB_EVENT_SOURCE", "/vnode-batch", "CloudEvents `source` attribute of every event.")

    ledger_table: str = setting(
        "VNB_LEDGER_TABLE",
        "vnbrequests",
        "Table of the request ledger (one entity per request key: state, timestamps, Job name, outcome).",
    )
    ledger_retention_seconds: int = setting(
        "VNB_LEDGER_RETENTION_SECONDS",
        7 * 86400,
        "Ledger entities not updated for this long are purged by the reconcile timer. It is also the "
        "idempotency window for finished requests: keep it above the longest redelivery delay.",
    )

    @field_validator("ledger_table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", value) or value.lower() == "tables":
            raise ValueError("a table name is 3-63 letters and digits, starting with a letter (not `tables`)")
        return value

    @field_validator("ledger_retention_seconds")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value < 3600:
            raise ValueError("must be at least 3600 (an hour): it bounds the redelivery idempotency window")
        return value

    @field_validator("requests_queue", "events_queue", "followup_queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        if not _QUEUE_NAME.fullmatch(value):
            raise ValueError(
                "a queue name is 3-63 lowercase letters, digits and single hyphens, "
                "starting and ending with a letter or digit"
            )
        return value

    @field_validator("requests_queue")
    @classmethod
    def _has_a_poison_queue(cls, value: str) -> str:
        # The host gives a trigger queue a poison queue only if the name does not end in
        # "-poison" and "<name>-poison" is itself a valid (<= 63 characters) queue name
        # (azure-sdk-for-net Microsoft.Azure.WebJobs.Extensions.Storage.Queues/src/Listeners/
        # QueueListenerFactory.cs CreatePoisonQueueReference). Without one, a request that keeps
        # failing is never moved, never dead-lettered: it stays in the queue, skipped, until its TTL.
        if value.endswith(_POISON_SUFFIX) or len(value) + len(_POISON_SUFFIX) > _MAX_QUEUE_NAME:
            raise ValueError(
                f"must be at most {_MAX_QUEUE_NAME - len(_POISON_SUFFIX)} characters and not end in "
                f"'{_POISON_SUFFIX}': the host moves failing requests to '<name>{_POISON_SUFFIX}', "
                "and gives no poison queue otherwise"
            )
        return value

    @property
    def poison_queue(self) -> str:
        return f"{self.requests_queue}{_POISON_SUFFIX}"
