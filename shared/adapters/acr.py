"""Azure Container Registry token exchange: the app's managed identity → an ACR refresh token.

Protocol (Azure/acr ``docs/AAD-OAuth.md``, "Exchanging AAD token for ACR refresh token"): POST
``https://<login server>/oauth2/exchange`` with the form fields ``grant_type=access_token``,
``service=<login server>``, ``tenant=<tenant id>`` and ``access_token=<Entra access token>``; the
answer is ``{"refresh_token": "<jwt>"}``. The Entra token is for the audience
``https://containerregistry.azure.net`` (ACR docs, "Disable authentication as ARM": registries may
refuse ARM-audience tokens; this one is always accepted). The registry answers 401 when the identity
has no role on it (or the tenant is not the registry's): the app's identity needs AcrPull.

No value of either token is ever put in an exception, a log line or a return value other than the
``RefreshToken``. ``requests`` and ``azure.identity`` are imported on first use.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.adapters.per_key import PerKey
from shared.base.errors import PermanentError, TransientError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

ACR_SCOPE = "https://containerregistry.azure.net/.default"


class RegistryAccessDenied(PermanentError):
    """The registry refused the exchange (401/403): the app's identity lacks AcrPull, or the tenant is wrong."""


@dataclass(frozen=True)
class RefreshToken:
    value: str

    def __repr__(self) -> str:  # never print the value
        return "RefreshToken(***)"


class TokenExchange:
    """``refresh_token(server) -> RefreshToken``. Thread-safe; one credential per process."""

    def __init__(self, *, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._lock = threading.Lock()
        self._credential: TokenCredential | None = None

    def _entra_token(self) -> str:
        with self._lock:
            if self._credential is None:
                from azure.identity import DefaultAzureCredential

                client_id = os.environ.get("AZURE_CLIENT_ID") or None
                self._credential = DefaultAzureCredential(managed_identity_client_id=client_id)
            credential = self._credential
        from azure.core.exceptions import ClientAuthenticationError

        try:
            return credential.get_token(ACR_SCOPE).token
        except ClientAuthenticationError as e:
            raise TransientError(f"no Entra token for {ACR_SCOPE} ({type(e).__name__})") from e

    def refresh_token(self, server: str) -> RefreshToken:
        """A fresh ACR refresh token for ``server``.

        Raises RegistryAccessDenied (401/403: grant AcrPull) or TransientError (network, 429, 5xx)."""
        import requests

        access = self._entra_token()
        form = {"grant_type": "access_token", "service": server, "tenant": _tenant(access), "access_token": access}
        try:
            answer = requests.post(f"https://{server}/oauth2/exchange", data=form, timeout=self._timeout)
        except requests.RequestException as e:
            raise TransientError(f"ACR {server}: token exchange failed ({type(e).__name__})") from None
        if answer.status_code in (401, 403):
            raise RegistryAccessDenied(
                f"registry {server} refused the app's identity ({answer.status_code} {_error_code(answer.text)}): "
                f"grant the app's managed identity the role AcrPull on this registry (and check it is in the "
                f"registry's tenant)",
                status=answer.status_code,
            )
        if answer.status_code != 200:
            raise TransientError(
                f"ACR {server}: token exchange answered {answer.status_code}", status=answer.status_code
            )
        try:
            token = answer.json()["refresh_token"]
        except (ValueError, KeyError, TypeError):
            raise TransientError(f"ACR {server}: token exchange answered without a refresh_token") from None
        if not isinstance(token, str) or not token:
            raise TransientError(f"ACR {server}: token exchange answered an empty refresh_token")
        return RefreshToken(token)


def _tenant(access_token: str) -> str:
    """The ``tid`` claim of an Entra access token (read, not verified: Entra issued it to us)."""
    try:
        payload = access_token.split(".")[1]
        tid = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("tid")
    except (IndexError, ValueError, AttributeError):
        return ""
    return tid if isinstance(tid, str) else ""


def _error_code(body: str) -> str:
    """ACR's error code (``{"errors": [{"code": ...}]}``, distribution spec), never its free text."""
    try:
        code = json.loads(body)["errors"][0]["code"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "UNAUTHORIZED"
    return str(code) if isinstance(code, str) and code.isupper() else "UNAUTHORIZED"


exchange_for: PerKey[TokenExchange] = PerKey(lambda _server: TokenExchange())
"""The process's token exchange for a registry login server (created on first use)."""
