"""The HTTPS server the small stand-ins (Key Vault, ACR) share: loopback, a free port, TLS from the
test CA, no reverse DNS lookup, no Nagle; and their start/stop/context-manager lifecycle."""

from __future__ import annotations

import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from devtools.tls import shared_ca


class HttpsServer(ThreadingHTTPServer):
    """``standin`` is the object the handler answers with (``self.server.standin``)."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], standin: Any) -> None:
        self.standin = standin
        self._ctx = shared_ca().server_context()
        super().__init__(("127.0.0.1", 0), handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # no reverse DNS lookup
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle + delayed-ACK stalls
        return self._ctx.wrap_socket(sock, server_side=True), addr


class Served:
    """Lifecycle of a stand-in served by ``HttpsServer`` with the handler class ``HANDLER``."""

    HANDLER: type[BaseHTTPRequestHandler]
    _server: HttpsServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> Self:
        self._server = HttpsServer(self.HANDLER, self)
        threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
