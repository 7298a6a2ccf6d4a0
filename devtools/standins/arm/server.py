"""ARM's HTTPS front door: bearer-token authentication with ARM's 401 bodies, the api-version check,
routing to a resource provider with its authorization check, and the record of every request."""

from __future__ import annotations

import json
import re
import ssl
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs

from devtools.standins.arm.catalog import (
    ArmError,
)
from devtools.standins.arm.common import (
    _WRITE_METHODS,
    ARM_AUDIENCE,
    _Ctx,
    _norm_path,
    _Result,
)
from devtools.standins.arm.identity import (
    Principal,
    audience_matches,
)

_ARM_AUDIENCES_MSG = (
    "'https://management.core.windows.net/','https://management.core.windows.net',"
    "'https://management.azure.com/','https://management.azure.com'"
)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # normalized: no query, single slashes, percent-decoded
    api_version: str | None
    body: Any  # parsed JSON or None
    status: int
    principal_id: str | None = None
    query: dict[str, str] = field(default_factory=dict)


class Served(Protocol):
    """What the HTTP server calls on the stand-in it serves."""

    def _handle_http(self, h: _ArmRequestHandler) -> None: ...


class _ArmRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ArmServer

    def setup(self) -> None:
        self.request.settimeout(15)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        self.server.standin._handle_http(self)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _serve


class _ArmServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, standin: Served, port: int) -> None:
        super().__init__(("127.0.0.1", port), _ArmRequestHandler)
        self.standin = standin

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class HttpFront:
    """Reads a request, authenticates it, routes it (``_routes``) and records it in ``requests``."""

    def write_requests(self) -> list[RecordedRequest]:
        """PUT/POST/PATCH/DELETE requests, excluding credential-list POSTs (``list*`` actions).

        Token calls go to the identity endpoint and are never in ``requests`` (see ``token_requests``).
        """
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method in _WRITE_METHODS
                and not (r.method == "POST" and r.path.rsplit("/", 1)[-1].startswith("list"))
            ]

    def reset_records(self) -> None:
        with self._lock:
            self.requests.clear()
        with self._identity._lock:
            self._identity.requests.clear()

    # ------------------------------------------------------------------ HTTP
    def _handle_http(self, h: _ArmRequestHandler) -> None:
        raw_path, _, query = h.path.partition("?")
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        method = h.command.upper()
        path = _norm_path(raw_path)
        body: Any = None
        principal_id: str | None = None
        try:
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise ArmError(
                        400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
                    ) from None
            self._advance()
            principal = self._authenticate(h.headers.get("Authorization"))
            principal_id = principal.object_id
            status, headers, payload = self._dispatch(method, path, params, body, principal)
        except ArmError as exc:
            status, headers, payload = exc.status, dict(exc.headers), exc.body()
        except Exception as exc:  # a stand-in bug: surface it as ARM would, with detail
            status, headers, payload = 500, {}, {"error": {"code": "InternalServerError", "message": repr(exc)}}
        with self._lock:
            self.requests.append(
                RecordedRequest(method, path, params.get("api-version"), body, status, principal_id, params)
            )
        data = b"" if payload is None else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("x-ms-request-id", str(uuid.uuid4()))
        h.send_header("x-ms-correlation-request-id", h.headers.get("x-ms-client-request-id") or str(uuid.uuid4()))
        for k, v in headers.items():
            h.send_header(k, v)
        if payload is not None:
            h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if method != "HEAD":
            h.wfile.write(data)

    def _authenticate(self, header: str | None) -> Principal:
        def fail(code: str, message: str) -> ArmError:
            challenge = (
                f'Bearer authorization_uri="https://login.microsoftonline.com/{self.tenant_id}", '
                f'error="invalid_token", error_description="{message}"'
            )
            return ArmError(401, code, message, {"WWW-Authenticate": challenge})

        if not header:
            raise fail("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise fail(
                "AuthenticationFailedInvalidHeader",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            )
        tok = self.tokens.lookup(token.strip())
        if tok is None:
            raise fail("InvalidAuthenticationToken", "The access token is invalid.")
        if tok.expires_on <= time.time():
            exp = datetime.fromtimestamp(tok.expires_on, UTC).strftime("%m/%d/%Y %H:%M:%S")
            now = datetime.now(UTC).strftime("%m/%d/%Y %H:%M:%S")
            raise fail(
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{exp}' is earlier than current UTC time '{now}'.",
            )
        if not audience_matches(tok.audience, ARM_AUDIENCE):
            raise fail(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource '{tok.audience}'. It should "
                f"exactly match with one of the allowed audiences {_ARM_AUDIENCES_MSG}.",
            )
        p = self.tokens.principal(tok.principal_id)
        return p or Principal(tok.principal_id, tok.client_id)

    def _dispatch(self, method: str, path: str, params: dict[str, str], body: Any, principal: Principal) -> _Result:
        if "api-version" not in params:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        self._maybe_fault(method, path, principal)
        lowered = path.lower()
        for rx, table in self._routes:
            m = rx.fullmatch(lowered)
            if m is None:
                continue
            if method not in table:
                raise ArmError(405, "MethodNotAllowed", f"The HTTP method '{method}' is not supported at '{path}'.")
            fn, action, scope_of = table[method]
            g = self._original_groups(rx, path, m)
            if "sub" in g and g["sub"].lower() != self.subscription_id.lower():
                raise ArmError(404, "SubscriptionNotFound", f"The subscription '{g['sub']}' could not be found.")
            if action is not None:
                scope = scope_of(path, g) if scope_of else path
                self._authorize(principal, action.format(**g), scope, body)
            return fn(_Ctx(method, path, params, body, principal, g))
        raise ArmError(404, "NotFound", f"The ARM stand-in does not model '{method} {path}'.")

    @staticmethod
    def _original_groups(rx: re.Pattern[str], path: str, m: re.Match[str]) -> dict[str, str]:
        # the regexes match the lowered path; take group values from the original (same offsets)
        return {k: path[m.start(k) : m.end(k)] for k in rx.groupindex if m.group(k) is not None}
