"""kube-apiserver's HTTPS front: the routes the app's client calls, TLS on loopback, request bodies
(``Content-Length`` or chunked), one Status body for every error, and the fault hooks around them."""

from __future__ import annotations

import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

from devtools.standins.kube.faults import _Fault, _injected_error
from devtools.standins.kube.objects import (
    ApiError,
    dumps,
    route_not_found,
)

_NAME = r"(?P<name>[^/]+)"
_NS = r"(?P<ns>[^/]+)"
# (regex, route template for metrics, handler id)
_ROUTES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(p), t, h)
    for p, t, h in [
        (r"/apis/batch/v1/namespaces/{ns}/jobs", "/apis/batch/v1/namespaces/{ns}/jobs", "jobs"),
        (r"/apis/batch/v1/namespaces/{ns}/jobs/{name}", "/apis/batch/v1/namespaces/{ns}/jobs/{name}", "job"),
        (
            r"/apis/batch/v1/namespaces/{ns}/jobs/{name}/status",
            "/apis/batch/v1/namespaces/{ns}/jobs/{name}/status",
            "job_status",
        ),
        (r"/apis/batch/v1/jobs", "/apis/batch/v1/jobs", "jobs_all"),
        (r"/api/v1/namespaces/{ns}/pods", "/api/v1/namespaces/{ns}/pods", "pods"),
        (r"/api/v1/namespaces/{ns}/pods/{name}", "/api/v1/namespaces/{ns}/pods/{name}", "pod"),
        (r"/api/v1/namespaces/{ns}/pods/{name}/log", "/api/v1/namespaces/{ns}/pods/{name}/log", "pod_log"),
        (r"/api/v1/namespaces/{ns}/secrets", "/api/v1/namespaces/{ns}/secrets", "secrets"),
        (r"/api/v1/namespaces/{ns}/secrets/{name}", "/api/v1/namespaces/{ns}/secrets/{name}", "secret"),
        (r"/api/v1/pods", "/api/v1/pods", "pods_all"),
        (r"/api/v1/namespaces", "/api/v1/namespaces", "namespaces"),
        (r"/api/v1/namespaces/{name}", "/api/v1/namespaces/{name}", "namespace"),
        (r"/api/v1/nodes", "/api/v1/nodes", "nodes"),
        (r"/api/v1/nodes/{name}", "/api/v1/nodes/{name}", "node"),
        (r"/version", "/version", "version"),
        (r"/(?:healthz|livez|readyz)", "/healthz", "health"),
        (r"/api", "/api", "api"),
        (r"/apis", "/apis", "apis"),
    ]
    for p in ["^" + p.replace("{ns}", _NS).replace("{name}", _NAME) + "/?$"]
]


def _match_route(path: str) -> tuple[str | None, str, dict[str, str]]:
    for rx, template, handler in _ROUTES:
        m = rx.match(path)
        if m:
            return handler, template, {k: unquote(v) for k, v in m.groupdict().items()}
    return None, path, {}


class Served(Protocol):
    """What the front calls on the stand-in it serves (``apiserver.KubeStandIn``)."""

    token_validator: Callable[[str | None], bool] | None

    def _record(self, method: str, path: str, query: str, template: str) -> None: ...

    def _fault_for(self, method: str, path: str) -> _Fault: ...

    def _dispatch(
        self, method: str, handler: str, p: dict[str, str], q: dict[str, str], body: bytes, ctype: str
    ) -> tuple[int, bytes, str]: ...

    def _audit_id(self) -> str: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-standin/1.33"
    sys_version = ""
    timeout = 120
    server: _TLSServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self, method: str) -> None:
        standin = self.server.standin
        path, _, query = self.path.partition("?")
        handler, template, params = _match_route(path)
        standin._record(method, path, query, template)
        body = self._read_body()
        fault = standin._fault_for(method, path)
        if fault.slow:
            time.sleep(fault.slow)
        if fault.drop and not fault.after:
            self._drop()
            return
        headers: dict[str, str] = {}
        try:
            if fault.status and not fault.after:
                raise _injected_error(fault.status)
            auth = self.headers.get("Authorization") or ""
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
            if standin.token_validator is not None and not standin.token_validator(token):
                raise ApiError(401, "Unauthorized")
            if handler is None:
                raise route_not_found()
            q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
            code, payload, ctype = standin._dispatch(
                method, handler, params, q, body, self.headers.get("Content-Type") or ""
            )
            if fault.status:
                raise _injected_error(fault.status)
        except ApiError as e:
            code, payload, ctype = e.code, dumps(e.status()), "application/json"
            headers.update(e.headers)
        except Exception:  # a stand-in bug must surface as a 500 Status, not a hung client
            traceback.print_exc(file=sys.stderr)
            e2 = ApiError(
                500, "Internal error occurred: stand-in bug: " + traceback.format_exc(limit=1).strip().splitlines()[-1]
            )
            code, payload, ctype = 500, dumps(e2.status()), "application/json"
        if fault.drop:
            self._drop()
            return
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", standin._audit_id())
        for k, v in headers.items():
            self.send_header(k, v)
        # headers and body in one TLS write: one segment per response
        self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
        self.flush_headers()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], ctx: ssl.SSLContext, standin: Served) -> None:
        self.ssl_ctx = ctx
        self.standin = standin
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup; skip it
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(30)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle + delayed-ACK stalls
        try:
            conn = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            request.close()
            return
        with self.conns_lock:
            self.conns.add(conn)
        try:
            _Handler(conn, client_address, self)
        except (OSError, ssl.SSLError, ValueError):
            pass  # client went away
        finally:
            with self.conns_lock:
                self.conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass

    def close_connections(self) -> None:
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
