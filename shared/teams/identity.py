"""Who calls the HTTP API: the Easy Auth principal and the function key (pure).

App Service authentication injects the caller's claims as ``X-MS-CLIENT-PRINCIPAL`` (Base64 JSON
``{"auth_typ", "claims": [{"typ", "val"}], "name_typ", "role_typ"}``) and its id as
``X-MS-CLIENT-PRINCIPAL-ID``; "external requests aren't allowed to set these headers, so they're
present only if set by App Service" (Microsoft docs, "Work with user identities in Azure App
Service authentication", learn.microsoft.com/azure/app-service/configure-authentication-user-identities).
That holds only where Easy Auth runs, so they are read only when VNB_EASY_AUTH says it does.
Entra ID claims (Microsoft identity platform "Access token claims reference"): ``oid`` — after
App Service's claim mapping ``http://schemas.microsoft.com/identity/claims/objectidentifier`` —
the caller's object id; ``appid`` (v1 tokens) or ``azp`` (v2) the client application; ``groups``
its groups' object ids.

The function key comes as the ``x-functions-key`` header or the ``code`` query parameter
(azure-functions-host ``AuthenticationLevelHandler``); the host has already checked it, and
the teams file names keys by their SHA-256 (``shared.teams.model.key_digest``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Final

from shared.teams.model import Caller, key_digest

PRINCIPAL: Final = "x-ms-client-principal"
PRINCIPAL_ID: Final = "x-ms-client-principal-id"
FUNCTION_KEY: Final = "x-functions-key"
_OID: Final = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
_APP: Final = ("appid", "azp")
_GROUPS: Final = ("groups",)


def caller_of(headers: Mapping[str, str], params: Mapping[str, str], *, easy_auth: bool) -> Caller:
    """The caller of one HTTP request (empty fields for what it did not present)."""
    lower = {k.lower(): v for k, v in headers.items()}
    key = lower.get(FUNCTION_KEY) or params.get("code") or ""
    digest = key_digest(key) if key else ""
    principal = application = ""
    groups: set[str] = set()
    if easy_auth:
        claims = _claims(lower.get(PRINCIPAL, ""))
        principal = (_first(claims, _OID) or lower.get(PRINCIPAL_ID, "")).lower()
        application = _first(claims, _APP).lower()
        groups = {val.lower() for typ, val in claims if typ in _GROUPS}
    name = principal or (f"app:{application}" if application else f"key:{digest[:12]}" if digest else "")
    return Caller(principal, application, frozenset(groups), digest, name)


def _claims(header: str) -> list[tuple[str, str]]:
    if not header:
        return []
    try:
        data = json.loads(base64.b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return []
    claims = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(claims, list):
        return []
    return [(str(c.get("typ", "")), str(c.get("val", ""))) for c in claims if isinstance(c, dict) and c.get("val")]


def _first(claims: list[tuple[str, str]], types: tuple[str, ...]) -> str:
    return next((val for typ, val in claims if typ in types), "")
