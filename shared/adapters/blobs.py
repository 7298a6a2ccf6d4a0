"""Blob data account adapter: the only module that imports azure.storage.blob.

With the app's managed identity (DefaultAzureCredential; ``AZURE_CLIENT_ID`` picks a user-assigned
one) it gets a user delegation key (Storage docs "Create a user delegation SAS": REST ``Get User
Delegation Key``, role Storage Blob Delegator; no account key anywhere) and signs container SAS
URLs with it; a SAS grants at most what the identity itself may do, so the identity also needs a
data role (Storage Blob Data Contributor) on the account. It also lists what a Job wrote.

The key is valid for at most 7 days (same doc) and is kept until a SAS would outlive it, so most
requests cost no call at all. No SAS or key value ever goes into an exception or a log line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from shared.adapters.per_key import PerKey
from shared.base.errors import PermanentError, TransientError

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, UserDelegationKey

T = TypeVar("T")

MAX_SAS_LIFETIME = timedelta(days=7)
"""A user delegation key, and so every SAS signed with it, lasts at most 7 days (Storage docs)."""
_KEY_SKEW = timedelta(minutes=5)


class DataAccessDenied(PermanentError):
    """The account refused the app's identity (403): grant the roles named in the message."""


@dataclass(frozen=True)
class Listing:
    count: int
    bytes: int
    names: list[str]


class DataAccount:
    """One data account (its blob endpoint). Thread-safe; one client and one delegation key per process."""

    def __init__(self, account_url: str, *, timeout: float = 10.0) -> None:
        self.account_url = account_url.rstrip("/")
        self._timeout = timeout
        self._lock = threading.Lock()
        self._client: BlobServiceClient | None = None
        self._key: UserDelegationKey | None = None
        self._key_expiry: datetime | None = None
        self.key_requests = 0

    def _service(self) -> BlobServiceClient:
        with self._lock:
            if self._client is None:
                from azure.identity import DefaultAzureCredential
                from azure.storage.blob import BlobServiceClient

                client_id = os.environ.get("AZURE_CLIENT_ID") or None
                self._client = BlobServiceClient(
                    self.account_url,
                    credential=DefaultAzureCredential(managed_identity_client_id=client_id),
                    connection_timeout=self._timeout,
                    read_timeout=self._timeout,
                    retry_total=2,
                )
            return self._client

    def _delegation_key(self, until: datetime, now: datetime) -> UserDelegationKey:
        service = self._service()
        with self._lock:
            if self._key is not None and self._key_expiry is not None and self._key_expiry >= until:
                return self._key
        expiry = now + MAX_SAS_LIFETIME
        key = self._call("get a user delegation key", lambda: service.get_user_delegation_key(now - _KEY_SKEW, expiry))
        with self._lock:
            self._key, self._key_expiry = key, expiry
            self.key_requests += 1
        return key

    def container_sas_url(self, container: str, *, write: bool, expiry: datetime, now: datetime) -> str:
        """``<account url>/<container>?<user delegation SAS>``: read+list, or (``write``)
        create+write+list (Storage docs "Create a user delegation SAS", signed permissions)."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        expiry = min(expiry, now + MAX_SAS_LIFETIME)
        key = self._delegation_key(expiry, now)
        permission = (
            ContainerSasPermissions(create=True, write=True, list=True)
            if write
            else ContainerSasPermissions(read=True, list=True)
        )
        sas = generate_container_sas(
            self._service().account_name or "",
            container,
            user_delegation_key=key,
            permission=permission,
            expiry=expiry,
            start=now - _KEY_SKEW,
            protocol="https",
        )
        return f"{self.account_url}/{container}?{sas}"

    def list_under(self, container: str, prefix: str, *, first: int) -> Listing:
        """Count, total size and the first ``first`` names of the blobs under ``prefix``."""
        client = self._service().get_container_client(container)

        def walk() -> Listing:
            count = size = 0
            names: list[str] = []
            for blob in client.list_blobs(name_starts_with=prefix or None):
                count += 1
                size += int(blob.size or 0)
                if len(names) < first:
                    names.append(str(blob.name))
            return Listing(count, size, names)

        return self._call(f"list {container}/{prefix}", walk)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

        try:
            return fn()
        except ClientAuthenticationError as e:
            if e.status_code == 403:
                raise self._denied(what) from None
            raise TransientError(f"{self.account_url}: could not {what} ({type(e).__name__})") from None
        except HttpResponseError as e:
            if e.status_code == 403:
                raise self._denied(what) from None
            if e.status_code == 404:
                raise PermanentError(f"{self.account_url}: could not {what}: not found", status=404) from None
            raise TransientError(
                f"{self.account_url}: could not {what} ({e.status_code})", status=e.status_code
            ) from None
        except ServiceRequestError as e:
            raise TransientError(f"{self.account_url}: could not {what} ({type(e).__name__})") from None

    def _denied(self, what: str) -> DataAccessDenied:
        return DataAccessDenied(
            f"{self.account_url} refused the app's identity ({what}): grant it Storage Blob Delegator and "
            "Storage Blob Data Contributor on this account",
            status=403,
        )


account_for: PerKey[DataAccount] = PerKey(DataAccount)
"""The process's client of a data account URL (created on first use)."""
