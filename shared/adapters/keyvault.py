"""Key Vault adapter: the only module that imports azure.keyvault.secrets.

Reads secret values with the app's managed identity (DefaultAzureCredential; ``AZURE_CLIENT_ID``
selects a user-assigned identity), which needs the role Key Vault Secrets User on the vault
(RBAC mode). The SDK answers the vault's first 401 bearer challenge itself (its
``ChallengeAuthPolicy`` takes the token scope from the challenge's ``resource``). The SDK is
imported on first use, never at cold start.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from shared.adapters.per_key import PerKey
from shared.base.errors import PermanentError, TransientError

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient


class VaultSecretMissing(PermanentError):
    """The secret does not exist in the vault (404), or has no value (disabled): retrying cannot help."""


class VaultSecretForbidden(PermanentError):
    """The app's identity may not read the secret (403): grant it Key Vault Secrets User."""


class VaultReader:
    """``read(name) -> str``: the current value of one secret. Thread-safe; one client per process."""

    def __init__(self, vault_url: str, *, timeout: float = 10.0) -> None:
        self.vault_url = vault_url
        self._timeout = timeout
        self._lock = threading.Lock()
        self._client: SecretClient | None = None

    def _secret_client(self) -> SecretClient:
        with self._lock:
            if self._client is None:
                from azure.identity import DefaultAzureCredential
                from azure.keyvault.secrets import SecretClient

                client_id = os.environ.get("AZURE_CLIENT_ID") or None
                credential = DefaultAzureCredential(managed_identity_client_id=client_id)
                self._client = SecretClient(
                    self.vault_url,
                    credential,
                    connection_timeout=self._timeout,
                    read_timeout=self._timeout,
                    retry_total=2,
                )
            return self._client

    def read(self, name: str) -> str:
        """The current value of secret ``name``.

        Raises VaultSecretMissing (404, or a disabled secret: 403 ``Forbidden`` with code
        ``SecretDisabled``), VaultSecretForbidden (403: the identity lacks the role), or
        TransientError (429 throttling, 5xx, network, token failures) — never with the value."""
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

        try:
            secret = self._secret_client().get_secret(name)
        except ResourceNotFoundError as e:
            raise VaultSecretMissing(f"secret {name!r} not found in {self.vault_url}", status=404) from e
        except ClientAuthenticationError as e:  # 401 after the challenge, or no token at all
            raise TransientError(
                f"could not authenticate to {self.vault_url} ({type(e).__name__})", status=e.status_code
            ) from e
        except HttpResponseError as e:
            code = getattr(e.error, "code", None) if e.error is not None else None
            if e.status_code == 403 and code == "SecretDisabled":
                raise VaultSecretMissing(f"secret {name!r} of {self.vault_url} is disabled", status=403) from e
            if e.status_code == 403:
                raise VaultSecretForbidden(
                    f"the app's identity may not read secret {name!r} of {self.vault_url}: grant it the role "
                    "Key Vault Secrets User on this vault (RBAC mode)",
                    status=403,
                ) from e
            raise TransientError(
                f"Key Vault {self.vault_url} answered {e.status_code} reading {name!r}", status=e.status_code
            ) from e
        if secret.value is None:
            raise VaultSecretMissing(f"secret {name!r} of {self.vault_url} has no value")
        return secret.value


reader_for: PerKey[VaultReader] = PerKey(VaultReader)
"""The process's reader of a vault URL (created on first use)."""
