"""Storage-queue adapter: the only module that imports azure.storage.queue.

The same connection the bindings use (``AzureWebJobsStorage``): a connection string (Azurite,
``UseDevelopmentStorage=true``) locally, an identity-based queue service URI with
DefaultAzureCredential in Azure. Messages are plain UTF-8 text: host.json sets
``messageEncoding: none`` so that every producer (az CLI, SDKs, portal) interoperates.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.base.errors import TransientError
from shared.base.handles import MessageHandle
from shared.config.settings import Settings

if TYPE_CHECKING:  # the SDK (with aiohttp) is imported on first use, not at cold start (issue 16)
    from azure.core.credentials import TokenCredential
    from azure.storage.queue import QueueClient, QueueServiceClient

# Azurite's well-known development account (public, documented by Microsoft; not a secret).
_DEV_ACCOUNT = "devstoreaccount1"
_DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_DEV_CONNECTION = (
    f"DefaultEndpointsProtocol=http;AccountName={_DEV_ACCOUNT};AccountKey={_DEV_KEY};"
    f"QueueEndpoint=http://127.0.0.1:10001/{_DEV_ACCOUNT};"
)


@dataclass(frozen=True)
class ReceivedMessage:
    id: str
    body: str
    dequeue_count: int
    inserted_at: datetime | None
    pop_receipt: str


class QueueSendError(TransientError):
    pass


class Queues:
    """Queue clients for one storage account, created on first use and kept per process."""

    def __init__(self, settings: Settings, *, retry_total: int | None = None) -> None:
        """``retry_total``: retries of one call after a connection or 5xx failure, at a short
        backoff (for the CLI, which should say "unreachable" in seconds); default: the SDK's policy
        (azure-storage-queue ``ExponentialRetry``: 3 retries, 15 s then 3**n s apart)."""
        self._settings = settings
        self._client_options: dict[str, Any] = {}
        if retry_total is not None:
            from azure.storage.queue import ExponentialRetry

            self._client_options["retry_policy"] = ExponentialRetry(
                initial_backoff=1, increment_base=2, retry_total=retry_total
            )
        self._service: QueueServiceClient | None = None
        self._clients: dict[str, QueueClient] = {}
        self._lock = threading.Lock()

    def _credential(self) -> TokenCredential:
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(managed_identity_client_id=self._settings.storage_client_id)

    def service(self) -> QueueServiceClient:
        from azure.storage.queue import QueueServiceClient

        with self._lock:
            if self._service is None:
                conn = self._settings.storage_connection
                if conn:
                    if conn.strip().lower().rstrip(";") == "usedevelopmentstorage=true":
                        conn = _DEV_CONNECTION
                    self._service = QueueServiceClient.from_connection_string(conn, **self._client_options)
                else:
                    assert self._settings.storage_queue_uri  # settings guarantee one of the two
                    self._service = QueueServiceClient(
                        self._settings.storage_queue_uri, credential=self._credential(), **self._client_options
                    )
            return self._service

    def client(self, queue: str) -> QueueClient:
        with self._lock:
            client = self._clients.get(queue)
        if client is None:
            client = self.service().get_queue_client(queue)
            with self._lock:
                self._clients.setdefault(queue, client)
        return client

    def send(
        self, queue: str, text: str, *, visibility_timeout: int | None = None, time_to_live: int | None = None
    ) -> str:
        """Send one message; return its id. Failures are transient (the caller retries).

        ``time_to_live`` (seconds; default the service's 7 days): a message nobody needs after that long."""
        return self.send_for_handle(
            queue, text, visibility_timeout=visibility_timeout, time_to_live=time_to_live
        ).message_id

    def send_for_handle(
        self, queue: str, text: str, *, visibility_timeout: int | None = None, time_to_live: int | None = None
    ) -> MessageHandle:
        """As :meth:`send`, returning the message's id and pop receipt (Put Message answers both),
        with which :meth:`wake` can make it visible before ``visibility_timeout`` ends."""
        from azure.core.exceptions import AzureError, HttpResponseError

        def put() -> Any:
            return self.client(queue).send_message(
                text, visibility_timeout=visibility_timeout, time_to_live=time_to_live
            )

        try:
            message = put()
        except HttpResponseError as e:
            if e.status_code == 404:
                self.ensure(queue)
                message = put()
            else:
                raise QueueSendError(f"sending to queue {queue!r} failed: {e.message}", status=e.status_code) from e
        except AzureError as e:
            raise QueueSendError(f"sending to queue {queue!r} failed: {e}") from e
        return MessageHandle(str(message.id), str(message.pop_receipt or ""))

    def wake(self, queue: str, handle: MessageHandle) -> bool:
        """Make an invisible message visible now (Update Message with ``visibilitytimeout=0``).

        False when the handle no longer holds: the message was received or updated since (its pop
        receipt changed: 400 ``PopReceiptMismatch``) or deleted (404 ``MessageNotFound``)
        (learn.microsoft.com/rest/api/storageservices/update-message). Raises
        :class:`QueueSendError` for anything else (the caller may try again later)."""
        from azure.core.exceptions import AzureError, HttpResponseError

        try:
            self.client(queue).update_message(handle.message_id, handle.pop_receipt, visibility_timeout=0)
        except HttpResponseError as e:
            raw = getattr(e, "error_code", None)  # the SDK's StorageErrorCode (a str enum) or a str
            code = str(getattr(raw, "value", raw) or "")
            if e.status_code == 404 or (e.status_code == 400 and code == "PopReceiptMismatch"):
                return False
            # Status and error code only: an authentication failure's body can echo the signed
            # string, pop receipt included.
            raise QueueSendError(
                f"waking a message of queue {queue!r} failed: {e.status_code} {code or 'error'}", status=e.status_code
            ) from e
        except AzureError as e:
            raise QueueSendError(f"waking a message of queue {queue!r} failed: {e}") from e
        return True

    def send_event(self, text: str) -> str:
        return self.send(self._settings.events_queue, text)

    def ensure(self, queue: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            self.client(queue).create_queue()
        except ResourceExistsError:
            pass

    def receive(self, queue: str, *, max_messages: int = 32, visibility_timeout: int = 30) -> Iterator[ReceivedMessage]:
        for m in self.client(queue).receive_messages(
            messages_per_page=max_messages, max_messages=max_messages, visibility_timeout=visibility_timeout
        ):
            yield ReceivedMessage(
                id=str(m.id),
                body=_text(m.content),
                dequeue_count=int(m.dequeue_count or 0),
                inserted_at=m.inserted_on,
                pop_receipt=str(m.pop_receipt),
            )

    def delete(self, queue: str, message: ReceivedMessage) -> None:
        self.client(queue).delete_message(message.id, message.pop_receipt)

    def approximate_count(self, queue: str) -> int:
        """The queue's ``x-ms-approximate-messages-count`` (Get Queue Metadata): never lower than the
        messages in it, invisible ones (deferred, being processed) included; 0 for a missing queue."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            return int(self.client(queue).get_queue_properties().approximate_message_count or 0)
        except ResourceNotFoundError:
            return 0
        except AzureError as e:
            raise QueueSendError(f"reading the length of queue {queue!r} failed: {e}") from e

    def peek(self, queue: str, *, max_messages: int = 32) -> list[str]:
        return [_text(m.content) for m in self.client(queue).peek_messages(max_messages=max_messages)]


def _text(content: Any) -> str:
    if isinstance(content, bytes):
        return content.decode("utf-8", errors="replace")
    return str(content or "")


@functools.cache
def queues_for(settings: Settings) -> Queues:
    """The process-wide Queues for these settings (clients are reused across invocations)."""
    return Queues(settings)
