"""HTTP triggers: the host's front end on loopback (``func start`` serves ``/api/<route>``).

Sources:

* Routes: ``/<routePrefix>/<route>`` with prefix ``api`` unless host.json
  ``extensions.http.routePrefix`` says otherwise (azure-functions-host
  ``src/WebJobs.Script.WebHost/Management/WebFunctionsManager.cs`` ``GetRoutePrefix``); the route
  defaults to the function name; templates are ASP.NET route templates (``{id}``,
  ``{id:int}``, ``{id?}``, ``{*rest}``); ``methods`` become an ``HttpMethodRouteConstraint``, so
  any other method matches no route: 404.
* Keys: a key is read from the ``x-functions-key`` header, else the ``code`` query parameter
  (``src/WebJobs.Script.WebHost/Security/Authentication/Keys/AuthenticationLevelHandler.cs``
  ``GetAuthorizationKeyInfoAsync``); a function key (or host key) grants the Function level,
  the master key Admin (``Security/KeyManagement/SecretManager.cs``
  ``GetAuthorizationLevelOrNullAsync``); ``anonymous`` needs nothing, ``function`` needs
  Function or Admin, ``admin`` needs Admin (``Security/Authorization/AuthUtility.cs``
  ``PrincipalHasAuthLevelClaim``); otherwise 401 Unauthorized.
* Request to the worker: ``RpcHttp`` with ``method``, ``url``, lower-cased ``headers``,
  non-empty ``query`` values (a repeated parameter's values joined with commas, as
  ``StringValues.ToString()`` does), route ``params`` and the body as bytes (the worker announces
  ``RawHttpBodyBytes``/``RpcHttpBodyOnly``) (``src/WebJobs.Script.Grpc/MessageExtensions/
  GrpcMessageConversionExtensions.cs`` ``ToRpcHttp``); no trigger metadata, since the worker
  announces ``RpcHttpTriggerMetadataRemoved``.
* Body: Kestrel refuses a ``Content-Length`` that is not a number with 400 before any middleware
  (ASP.NET Core ``Http1MessageBody``/``HttpHeaders.ParseContentLength``: ``BadHttpRequestException``,
  ``RequestRejectionReason.InvalidContentLength``); the key is checked by the authentication
  middleware, which never reads the body, so a caller without a key gets its 401 whatever it
  sends; a body longer than the host's limit is a 413 (``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT``,
  default 104857600 bytes: learn.microsoft.com/azure/azure-functions/functions-app-settings
  #functions_request_body_size_limit; Kestrel ``MaxRequestBodySize``,
  ``RequestRejectionReason.RequestBodyTooLarge``). Here the body is read only after the route
  and the key passed, and a connection whose body was not read is closed after the reply.
* Response: the invocation's ``return_value`` (the ``$return`` http output): an ``RpcHttp``
  gives status, headers and body; a plain value is a 200 with that body. A failed invocation
  is a 500 with no body (the host never sends the worker's traceback to the caller).
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from devtools.host import protos
from devtools.host.bindings import FunctionSpec, HttpTrigger
from devtools.host.contract import Invocation

log = logging.getLogger("devtools.host")

BODY_LIMIT = 104_857_600  # FUNCTIONS_REQUEST_BODY_SIZE_LIMIT's default (see the module docstring)
_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?(\?)?\}")
_CONSTRAINTS = {"int": r"-?\d+", "long": r"-?\d+", "guid": r"[0-9a-fA-F-]{36}", "bool": r"(?:true|false)",
                "alpha": r"[A-Za-z]+"}


def compile_route(template: str) -> re.Pattern[str]:
    """A regex for an ASP.NET route template (catch-all, optional and typed parameters)."""
    out, pos = "", 0
    for m in _PARAM.finditer(template):
        out += re.escape(template[pos:m.start()])
        catch_all, name, constraint, optional = m.groups()
        body = ".+" if catch_all else _CONSTRAINTS.get(constraint or "", r"[^/]+")
        out += f"(?P<{name}>{body})" + ("?" if optional or catch_all else "")
        pos = m.end()
    out += re.escape(template[pos:])
    out = out.replace("/(?P", "/?(?P")  # an optional last segment may drop its slash
    return re.compile(f"^{out}/?$", re.IGNORECASE)


def authorized(level: str, key: str | None, function_keys: dict[str, str], master_key: str) -> bool:
    """Whether ``key`` meets ``authLevel`` ``level`` (compared in constant time)."""
    if level == "anonymous":
        return True
    if key is None:
        return False
    is_master = hmac.compare_digest(key, master_key)
    if level == "admin":
        return is_master
    return is_master or any(hmac.compare_digest(key, value) for value in function_keys.values())


class HttpHost(Protocol):
    """What the front end reads from the host: the indexed functions, keys, and one invocation."""

    host_json: dict[str, Any]
    functions: list[FunctionSpec]
    function_keys: dict[str, str]
    master_key: str

    def call(self, spec: FunctionSpec, input_data: list[Any], trigger_metadata: dict[str, Any], *,
             reason: str) -> Invocation: ...


class HttpFrontEnd:
    """A threaded HTTP server on 127.0.0.1 for the app's HTTP functions."""

    def __init__(self, host: HttpHost, port: int) -> None:
        self.host = host
        prefix = str(((host.host_json.get("extensions") or {}).get("http") or {}).get("routePrefix", "api"))
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.routes = [(compile_route(f.trigger.route), f) for f in host.functions if isinstance(f.trigger, HttpTrigger)]
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, the body waits for
            # the client's delayed ACK of the headers (~40 ms per keep-alive response on Linux).
            # Kestrel sets TCP_NODELAY by default (learn.microsoft.com KestrelServerOptions.NoDelay:
            # "Defaults to true"; SocketTransportOptions.NoDelay in later ASP.NET Core versions).
            disable_nagle_algorithm = True

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("http: " + fmt, *args)

            def handle_one(self) -> None:
                front.handle(self)

            # Every method (any token, e.g. TRACE or QUERY) reaches the router, where a method no
            # route allows is a 404 as above; none gets http.server's own 501 page.
            def __getattr__(self, name: str) -> Any:
                if name.startswith("do_"):
                    return self.handle_one
                raise AttributeError(name)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # shutdown() returns once serve_forever next looks at its flag: every poll_interval
        # (socketserver's default, 0.5 s, was half of every stop).
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="http", daemon=True)

    def start(self) -> HttpFrontEnd:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def match(self, method: str, path: str) -> tuple[FunctionSpec, dict[str, str]] | None:
        if self.prefix:
            if not path.lower().startswith(self.prefix.lower() + "/"):
                return None
            path = path[len(self.prefix):]
        path = path.strip("/")
        for pattern, spec in self.routes:
            m = pattern.fullmatch(path)
            assert isinstance(spec.trigger, HttpTrigger)
            if m and (not spec.trigger.methods or method in spec.trigger.methods):
                return spec, {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
        return None

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        split = urlsplit(req.path)
        raw_length = (req.headers.get("content-length") or "0").strip()
        if not raw_length.isascii() or not raw_length.isdigit():
            self._refuse(req, 400)
            return
        length = int(raw_length)
        found = self.match(req.command, split.path)
        if found is None:
            self._refuse(req, 404)
            return
        spec, params = found
        assert isinstance(spec.trigger, HttpTrigger)
        # A repeated parameter is one value joined with commas: the host passes
        # ``pair.Value.ToString()`` of ASP.NET's StringValues (GrpcMessageConversionExtensions.ToRpcHttp).
        values: dict[str, list[str]] = {}
        for name, value in parse_qsl(split.query, keep_blank_values=True):
            values.setdefault(name, []).append(value)
        query = {name: ",".join(v) for name, v in values.items()}
        key = req.headers.get("x-functions-key") or query.get("code")
        if not authorized(spec.trigger.auth_level, key, self.host.function_keys, self.host.master_key):
            self._refuse(req, 401)
            return
        if length > BODY_LIMIT:
            self._refuse(req, 413)
            return
        body = req.rfile.read(length) if length > 0 else b""
        http = protos.RpcHttp(
            method=req.command, url=f"{self.url}{req.path}",
            headers={k.lower(): v for k, v in req.headers.items()},
            query={k: v for k, v in query.items() if v}, params=params,
            body=protos.TypedData(bytes=body) if body else None)
        data = [protos.ParameterBinding(name=spec.trigger.param, data=protos.TypedData(http=http))]
        outcome = self.host.call(spec, data, {}, reason=f"This HTTP triggered function executed ({req.command}).")
        if not outcome.ok:
            self._reply(req, 500, {}, b"")
            return
        status, headers, payload = response_parts(outcome.response.return_value)
        self._reply(req, status, headers, payload)

    @classmethod
    def _refuse(cls, req: BaseHTTPRequestHandler, status: int) -> None:
        """Answer without reading the body; the unread body would be taken for the next request."""
        req.close_connection = True
        cls._reply(req, status, {}, b"")

    @staticmethod
    def _reply(req: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        req.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                req.send_header(name, value)
        if req.close_connection:
            req.send_header("Connection", "close")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(body)


def response_parts(value: Any) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) from the invocation's return value."""
    kind = value.WhichOneof("data") if value is not None else None
    if kind is None:
        return 204, {}, b""
    if kind != "http":
        raw = getattr(value, kind)
        return 200, {}, raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
    http = value.http
    body = http.body
    body_kind = body.WhichOneof("data") if body is not None else None
    raw = getattr(body, body_kind) if body_kind else b""
    payload = raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
    return int(http.status_code or 200), {str(k): str(v) for k, v in (http.headers or {}).items()}, payload
