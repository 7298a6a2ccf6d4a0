"""A throwaway certificate authority for the HTTPS stand-ins (tests and the local demo).

The Kubernetes client and the ARM SDKs refuse plain HTTP for bearer tokens, so the
stand-ins serve TLS with a CA made by trustme; clients are told to trust it through the
kubeconfig (``certificate-authority-data``) or ``REQUESTS_CA_BUNDLE`` (azure-core).
"""

from __future__ import annotations

import ssl
import tempfile
import threading
from functools import cached_property
from pathlib import Path

import trustme


class TestCA:
    """One CA per process is enough; it signs a loopback server certificate."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._ca = trustme.CA()
        self._server = self._ca.issue_cert("127.0.0.1", "localhost", "::1")
        self._dir = Path(tempfile.mkdtemp(prefix="vnb-ca-"))

    @cached_property
    def ca_pem(self) -> bytes:
        return self._ca.cert_pem.bytes()

    @cached_property
    def ca_path(self) -> Path:
        """A PEM file with the CA certificate (for REQUESTS_CA_BUNDLE / SSL_CERT_FILE)."""
        path = self._dir / "ca.pem"
        path.write_bytes(self.ca_pem)
        return path

    @cached_property
    def server_pem_files(self) -> tuple[Path, Path]:
        """The loopback server certificate (chain) and its private key as PEM files, for servers
        that are not Python (Azurite's ``--cert``/``--key``)."""
        cert, key = self._dir / "server.pem", self._dir / "server-key.pem"
        cert.write_bytes(b"".join(blob.bytes() for blob in self._server.cert_chain_pems))
        key.write_bytes(self._server.private_key_pem.bytes())
        return cert, key

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server.configure_cert(ctx)
        return ctx


_shared: TestCA | None = None
_shared_lock = threading.Lock()


def shared_ca() -> TestCA:
    """The process-wide CA, so every stand-in in one test run is trusted by one bundle (one, even
    when servers start in several threads: the demo starts Azurite's blob service in the background)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TestCA()
        return _shared
