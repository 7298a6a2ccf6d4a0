"""Managed-identity token service for the ARM stand-in (App Service / Azure Functions protocol).

azure-identity 1.27 -> ``ManagedIdentityCredential`` picks the App Service flow when both
``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` are set (and ``IDENTITY_SERVER_THUMBPRINT`` is not,
which would mean Service Fabric). The flow is implemented by MSAL 1.39
(``msal.managed_identity._obtain_token_on_app_service``):

    GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>[&client_id=<id>]
    X-IDENTITY-HEADER: <IDENTITY_HEADER>
    Metadata: true

and expects ``{"access_token", "expires_on" (epoch seconds), "resource", "token_type"}``.
MSAL does not insist on https for this endpoint, so it is served over plain HTTP on loopback.
``resource`` is the scope without ``/.default`` (``https://management.azure.com`` for ARM,
``6dae42f8-4368-4678-94ff-3960e28e3630`` for the AKS Entra server app). Other identity selectors
App Service understands (``principal_id``/``object_id``, ``mi_res_id``) are accepted too.

Tokens have the shape of Entra access tokens (Microsoft identity platform docs "Access token
claims reference": a JWT whose payload carries ``aud``, ``iss`` = ``https://sts.windows.net/<tid>/``
for v1 tokens, ``iat``/``nbf``/``exp``, ``oid``, ``tid``, ``appid``), signed with a random key nobody
checks; the service remembers who each was issued to. The shape matters to Azurite's
``--oauth basic`` (``src/blob/authentication/BlobTokenAuthenticator.ts authenticateBasic``: decodes
the JWT, checks ``nbf``/``exp``, an ``iss`` prefix and a storage ``aud``; no signature) and to its
user delegation key, derived from the token's ``oid`` and ``tid`` (``ServiceHandler.getUserDelegationKey``).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

AKS_AAD_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
ARM_AUDIENCES = frozenset(
    {
        "https://management.azure.com",
        "https://management.core.windows.net",
    }
)


def normalize_audience(value: str) -> str:
    """``https://management.azure.com/.default`` / ``.../`` / ``...`` -> one comparable form."""
    aud = value.strip()
    if aud.endswith("/.default"):
        aud = aud[: -len("/.default")]
    return aud.rstrip("/").lower()


def audience_matches(token_audience: str, wanted: str) -> bool:
    have, want = normalize_audience(token_audience), normalize_audience(wanted)
    if want in ARM_AUDIENCES:
        return have in ARM_AUDIENCES
    if have.startswith("api://"):
        have = have[len("api://") :]
    if want.startswith("api://"):
        want = want[len("api://") :]
    return have == want


@dataclass(frozen=True)
class Principal:
    object_id: str
    client_id: str
    principal_type: str = "ServicePrincipal"
    display_name: str = ""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    principal_id: str
    client_id: str
    audience: str
    expires_on: float  # epoch seconds (clients compare with time.time())


@dataclass(frozen=True)
class TokenRequest:
    resource: str | None
    client_id: str | None
    status: int


class TokenStore:
    """Thread-safe token issue/validate; also the small "directory" of known principals."""

    def __init__(self, *, lifetime_seconds: int, tenant_id: str = "00000000-0000-0000-0000-0000000000aa") -> None:
        self.lifetime_seconds = lifetime_seconds
        self.tenant_id = tenant_id
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}
        self._principals: dict[str, Principal] = {}

    # -- directory -------------------------------------------------------------------------
    def add_principal(self, principal: Principal) -> None:
        with self._lock:
            self._principals[principal.object_id.lower()] = principal

    def principal(self, object_id: str) -> Principal | None:
        with self._lock:
            return self._principals.get(object_id.lower())

    def principal_by_client_id(self, client_id: str) -> Principal | None:
        with self._lock:
            for p in self._principals.values():
                if p.client_id.lower() == client_id.lower():
                    return p
        return None

    # -- tokens ----------------------------------------------------------------------------
    def issue(self, principal_id: str, audience: str, lifetime_seconds: int | None = None) -> IssuedToken:
        p = self.principal(principal_id)
        client_id = p.client_id if p else principal_id
        life = self.lifetime_seconds if lifetime_seconds is None else lifetime_seconds
        now = time.time()
        oid = p.object_id if p else principal_id
        claims = {
            "aud": audience.removesuffix("/.default"),
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": int(now),
            "nbf": int(now) - 1,
            "exp": int(now + life),
            "oid": oid,
            "tid": self.tenant_id,
            "appid": client_id,
            "sub": oid,
            "ver": "1.0",
            "uti": secrets.token_urlsafe(16),
        }
        tok = IssuedToken(
            token=".".join(_b64url(part) for part in ({"typ": "JWT", "alg": "RS256"}, claims))
            + "."
            + secrets.token_urlsafe(32),
            principal_id=oid,
            client_id=client_id,
            audience=audience,
            expires_on=now + life,
        )
        with self._lock:
            self._tokens[tok.token] = tok
        return tok

    def lookup(self, token: str | None) -> IssuedToken | None:
        if not token:
            return None
        with self._lock:
            return self._tokens.get(token)

    def validate(self, token: str | None, audience: str) -> str | None:
        tok = self.lookup(token)
        if tok is None or tok.expires_on <= time.time() or not audience_matches(tok.audience, audience):
            return None
        return tok.principal_id


def _b64url(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part, separators=(",", ":")).encode()).decode().rstrip("=")


class _IdentityHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _IdentityServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        status, payload = self.server.answer(self.path, self.headers.get("X-IDENTITY-HEADER"))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _IdentityServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        store: TokenStore,
        secret: str,
        default_principal: Callable[[], str],
        record: Callable[[TokenRequest], None],
    ) -> None:
        super().__init__(("127.0.0.1", 0), _IdentityHandler)
        self.store = store
        self.secret = secret
        self.default_principal = default_principal
        self.record = record

    def handle_error(self, request: Any, client_address: Any) -> None:
        return

    def answer(self, raw_path: str, header: str | None) -> tuple[int, dict[str, Any]]:
        _, _, query = raw_path.partition("?")
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        resource = params.get("resource")
        client_id = params.get("client_id")
        status, payload = self._answer(params, header)
        self.record(TokenRequest(resource=resource, client_id=client_id, status=status))
        return status, payload

    def _answer(self, params: dict[str, str], header: str | None) -> tuple[int, dict[str, Any]]:
        if header != self.secret:
            return 401, {"statusCode": 401, "message": "Unauthorized: X-IDENTITY-HEADER missing or wrong."}
        if params.get("api-version") != "2019-08-01":
            return 400, {"statusCode": 400, "message": "api-version 2019-08-01 is required."}
        resource = params.get("resource")
        if not resource:
            return 400, {"statusCode": 400, "message": "resource is required."}
        principal: Principal | None
        if params.get("client_id"):
            principal = self.store.principal_by_client_id(params["client_id"])
        elif params.get("principal_id") or params.get("object_id"):
            principal = self.store.principal(params.get("principal_id") or params.get("object_id") or "")
        elif params.get("mi_res_id"):
            principal = None
        else:  # system-assigned: the app's identity
            principal = self.store.principal(self.default_principal())
        if principal is None:
            return 400, {
                "statusCode": 400,
                "message": "No User Assigned or Delegated Managed Identity found for specified "
                "ClientId/ResourceId/PrincipalId.",
            }
        tok = self.store.issue(principal.object_id, resource)
        return 200, {
            "access_token": tok.token,
            "expires_on": str(int(tok.expires_on)),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": principal.client_id,
        }


class IdentityEndpoint:
    """Plain-HTTP loopback server speaking the App Service managed-identity protocol."""

    def __init__(self, store: TokenStore, default_principal: Callable[[], str]) -> None:
        self.secret = secrets.token_hex(16)
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._server = _IdentityServer(store, self.secret, default_principal, self._record)
        self._thread: threading.Thread | None = None

    def _record(self, req: TokenRequest) -> None:
        with self._lock:
            self.requests.append(req)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/msi/token"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="arm-identity", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
