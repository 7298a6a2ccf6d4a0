"""An Azure Container Registry's token service over HTTPS, for the app's real ``requests`` call.

Rules, each from its source:
- Azure/acr ``docs/AAD-OAuth.md`` "Calling POST /oauth2/exchange": a form POST with ``grant_type``
  (``access_token``), ``service`` (the registry's name), ``tenant`` (the Entra tenant of the
  credential) and ``access_token`` (an Entra access token); the answer is 200
  ``{"refresh_token": "<jwt>"}``. The refresh token is a JWT with ``iss: "Azure Container Registry"``,
  ``aud: <registry>``, ``grant_type: refresh_token``, ``tenant``, ``nbf``/``exp``/``iat`` ("ACR token
  claim sets"). Errors use the distribution spec's body ``{"errors": [{"code", "message"}]}``.
- "The AAD access token is used to … query for the set of permissions that the user has for the
  container registry resource" (same doc): an identity without a pull role (AcrPull) on the registry,
  a token of another tenant or for another audience, is refused: 401 ``UNAUTHORIZED``.
- The Entra audience accepted is ``https://containerregistry.azure.net`` (ACR docs "Disable
  authentication as ARM": ACR-audience tokens always work).
- "Authenticating docker with an ACR refresh token": username ``00000000-0000-0000-0000-000000000000``
  and the refresh token as password; it "stops working after a period of time": 3 hours (ACR docs
  "Authenticate with an Azure container registry"). ``check_pull`` answers that question for the
  virtual node stand-in (ACI pulls with the container group's ``imageRegistryCredentials``).
- ``GET /v2/`` without credentials: 401 with ``Www-Authenticate: Bearer realm="https://<registry>/oauth2/token",
  service="<registry>"`` (same doc, "Calling POST /oauth2/token": the challenge).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from devtools.standins.https import HttpsServer, Served

NULL_GUID = "00000000-0000-0000-0000-000000000000"
ACR_AUDIENCE = "https://containerregistry.azure.net"
REFRESH_TOKEN_SECONDS = 3 * 3600


@dataclass
class Counters:
    exchanges: int = 0
    refused: int = 0
    pulls: int = 0
    pulls_refused: int = 0
    issued: list[str] = field(default_factory=list)  # refresh tokens, for tests that plant-search


@dataclass(frozen=True)
class _Issued:
    principal: str
    expires: float


class AcrStandIn(Served):
    """One registry. ``server`` (``127.0.0.1:<port>``) once started; ``pullers`` hold AcrPull.

    ``validate_token(token, audience) -> principal id | None``: the identity stand-in's check;
    ``tenant``: the registry's tenant; ``lifetime_seconds``: of the refresh tokens it issues."""

    def __init__(
        self,
        *,
        validate_token: Callable[[str | None, str], str | None],
        tenant: str,
        pullers: set[str],
        lifetime_seconds: int = REFRESH_TOKEN_SECONDS,
    ) -> None:
        self._validate = validate_token
        self.tenant = tenant
        self.pullers = set(pullers)
        self.lifetime_seconds = lifetime_seconds
        self.repositories: set[str] = set()
        self.counters = Counters()
        self.lock = threading.Lock()
        self._tokens: dict[str, _Issued] = {}

    @property
    def server(self) -> str:
        """The login server, as images name it: ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ the registry's answers
    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self.lock:
            self.counters.exchanges += 1
            if form.get("grant_type") != "access_token" or not form.get("access_token"):
                self.counters.refused += 1
                return 400, {}, _errors("UNSUPPORTED", "grant_type access_token with an access_token is required")
            if form.get("service") != self.server:
                self.counters.refused += 1
                return 400, {}, _errors("DENIED", f"service {form.get('service')!r} is not this registry")
            principal = self._validate(form["access_token"], ACR_AUDIENCE)
            if principal is None or form.get("tenant") != self.tenant or principal not in self.pullers:
                self.counters.refused += 1
                return 401, {}, _errors("UNAUTHORIZED", "authentication required")
            now = time.time()
            token = self._jwt(principal, now)
            self._tokens[token] = _Issued(principal, now + self.lifetime_seconds)
            self.counters.issued.append(token)
            return 200, {}, {"refresh_token": token}

    def check_pull(self, username: str, password: str) -> bool:
        """Would a pull with this credential succeed (null GUID, a refresh token we issued, unexpired,
        its principal still holding AcrPull)?"""
        with self.lock:
            self.counters.pulls += 1
            issued = self._tokens.get(password)
            ok = (
                username == NULL_GUID
                and issued is not None
                and issued.expires > time.time()
                and issued.principal in self.pullers
            )
            if not ok:
                self.counters.pulls_refused += 1
            return ok

    def _jwt(self, principal: str, now: float) -> str:
        claims = {
            "jti": str(uuid.uuid4()),
            "sub": principal,
            "nbf": int(now),
            "exp": int(now + self.lifetime_seconds),
            "iat": int(now),
            "iss": "Azure Container Registry",
            "aud": self.server,
            "version": "1.0",
            "grant_type": "refresh_token",
            "tenant": self.tenant,
        }
        parts = [{"typ": "JWT", "alg": "RS256"}, claims]
        encoded = [base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=") for p in parts]
        return ".".join([*encoded, secrets.token_urlsafe(32)])

    def challenge(self) -> dict[str, str]:
        return {"Www-Authenticate": f'Bearer realm="https://{self.server}/oauth2/token",service="{self.server}"'}


def _errors(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message}]}


class _Handler(BaseHTTPRequestHandler):
    server: HttpsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.path.split("?")[0] != "/oauth2/exchange":
            self._send(404, {}, _errors("NAME_UNKNOWN", f"{self.path} is not served by this stand-in"))
            return
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        self._send(*self.server.standin.exchange(form))

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v2":
            self._send(401, self.server.standin.challenge(), _errors("UNAUTHORIZED", "authentication required"))
            return
        self._send(404, {}, _errors("NAME_UNKNOWN", f"{self.path} is not served by this stand-in"))


AcrStandIn.HANDLER = _Handler
