"""Key Vault's secrets data plane over HTTPS, for the real ``azure-keyvault-secrets`` client.

Rules, each from its source:
- REST shape (azure-rest-api-specs ``specification/keyvault/data-plane/Microsoft.KeyVault/stable/
  7.6/secrets.json`` ``GetSecret``): ``GET /secrets/{name}/{version}?api-version=…`` (version may be
  empty) → 200 ``SecretBundle`` ``{"value", "id", "attributes": {"enabled", "created", "updated",
  "recoveryLevel"}}``; errors as ``KeyVaultError`` ``{"error": {"code", "message"}}``.
- Bearer challenge (Key Vault docs "Authentication in Azure Key Vault", "Key Vault authentication
  flow"): a request without a token gets 401 with ``WWW-Authenticate: Bearer
  authorization="https://login.microsoftonline.com/<tenant>", resource="https://vault.azure.net"``.
  The resource is the vault's host without its first label (``contoso.vault.azure.net`` →
  ``vault.azure.net``); the SDK checks that rule (``_shared/challenge_auth_policy.py
  _validate_challenge_resource``: the request host must end with ``.<resource host>``). Served on
  ``127.0.0.1:<port>``, the same rule gives ``https://0.0.1:<port>``, which the identity stand-in
  issues tokens for like any other resource.
- Authorization in RBAC mode (Key Vault docs "Azure RBAC for Key Vault data plane"): reading a
  value needs ``Microsoft.KeyVault/vaults/secrets/getSecret/action`` (role Key Vault Secrets User);
  without it 403 ``{"error": {"code": "Forbidden", "message": "Caller is not authorized…",
  "innererror": {"code": "ForbiddenByRbac"}}}``.
- Missing secret: 404 ``SecretNotFound`` "A secret with (name/id) <name> was not found in this key
  vault." A disabled one: 403 ``SecretDisabled`` (Key Vault docs "Azure Key Vault secrets",
  "Operation get is not allowed on a disabled secret").
- Throttling (Key Vault docs "Azure Key Vault throttling guidance"): 429 ``Throttled`` with
  ``Retry-After`` in seconds.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from devtools.standins.https import HttpsServer, Served

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@dataclass
class Counters:
    """What the app asked for (tests and bench count calls per request)."""

    challenges: int = 0
    reads: int = 0
    by_name: dict[str, int] = field(default_factory=dict)


class KeyVaultStandIn(Served):
    """A vault with secrets, its allowed readers and fault switches. ``url`` once started.

    ``validate_token(token, audience) -> principal id | None``: the identity stand-in's check
    (``ArmStandIn.validate_token``); ``readers``: principal ids holding Key Vault Secrets User."""

    def __init__(self, *, validate_token: Callable[[str | None, str], str | None], readers: set[str]) -> None:
        self._validate = validate_token
        self.readers = set(readers)
        self.secrets: dict[str, str] = {}
        self.disabled: set[str] = set()
        self.throttle_next = 0
        self.counters = Counters()
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    @property
    def resource(self) -> str:
        """The challenge's resource: the vault host without its first label (see module doc)."""
        return f"https://0.0.1:{self.port}"

    def set_secret(self, name: str, value: str) -> None:
        with self.lock:
            self.secrets[name] = value

    # ------------------------------------------------------------------ requests
    def answer(self, method: str, path: str, auth: str | None) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        token = auth[7:] if auth and auth.lower().startswith("bearer ") else None
        with self.lock:
            if token is None:
                self.counters.challenges += 1
                challenge = (
                    f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="{self.resource}"'
                )
                return (
                    401,
                    {"WWW-Authenticate": challenge},
                    _error("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
                )
            principal = self._validate(token, self.resource)
            if principal is None:
                return 401, {}, _error("Unauthorized", "AKV10022: Invalid audience or expired token.")
            if not query.get("api-version"):
                return 400, {}, _error("BadParameter", "The 'api-version' query parameter is missing.")
            if method != "GET" or len(segments) not in (2, 3) or segments[0] != "secrets":
                return 405, {}, _error("BadParameter", f"{method} {parts.path} is not served by this stand-in")
            name = segments[1]
            self.counters.reads += 1
            self.counters.by_name[name] = self.counters.by_name.get(name, 0) + 1
            if self.throttle_next > 0:
                self.throttle_next -= 1
                return (
                    429,
                    {"Retry-After": "0"},
                    _error("Throttled", "Request was not processed because too many requests were received."),
                )
            if principal not in self.readers:
                err = _error(
                    "Forbidden",
                    f"Caller is not authorized to perform action on resource.\r\nCaller: appid={principal}\r\n"
                    "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'",
                )
                err["error"]["innererror"] = {"code": "ForbiddenByRbac"}
                return 403, {}, err
            if name not in self.secrets:
                return (
                    404,
                    {},
                    _error(
                        "SecretNotFound",
                        f"A secret with (name/id) {name} was not found in this key vault. "
                        "If you recently deleted this secret you may be able to recover it using the correct recovery command.",
                    ),
                )
            if name in self.disabled:
                return 403, {}, _error("SecretDisabled", "Operation get is not allowed on a disabled secret.")
            now = int(time.time())
            version = uuid.uuid5(uuid.NAMESPACE_URL, name + self.secrets[name]).hex
            return (
                200,
                {},
                {
                    "value": self.secrets[name],
                    "id": f"{self.url}secrets/{name}/{version}",
                    "attributes": {
                        "enabled": True,
                        "created": now,
                        "updated": now,
                        "recoveryLevel": "Recoverable+Purgeable",
                    },
                    "tags": {},
                },
            )


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class _Handler(BaseHTTPRequestHandler):
    server: HttpsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, headers, body = self.server.standin.answer(self.command, self.path, self.headers.get("Authorization"))
        raw = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("x-ms-keyvault-service-version", "1.9.0.0")
        self.end_headers()
        self.wfile.write(raw)

    do_GET = _serve
    do_PUT = _serve
    do_POST = _serve
    do_DELETE = _serve


KeyVaultStandIn.HANDLER = _Handler
