"""Azurite's blob service over HTTPS with ``--oauth basic``: the data account of the tests and demo.

Why this shape (Azurite 3.35, ``node_modules/azurite``; Azure/Azurite README "OAuth authentication"
and issue #656):
- A bearer token is accepted only over HTTPS (``BlobTokenAuthenticator.validate``: "Authentication
  scheme Bearer is not allowed with HTTP"), so the service gets ``--cert``/``--key`` from the test CA.
- ``--oauth basic`` decodes the JWT and checks lifetime, issuer prefix and a storage audience, never
  the signature or a role: the data roles are Azure's business, documented in docs/deploy.md.
- ``Get User Delegation Key`` needs that bearer token; the key is derived from the token's ``oid`` and
  ``tid`` (``ServiceHandler.getUserDelegationKey``), and a user delegation SAS is checked against the
  key recomputed from its ``skoid``/``sktid``/``skt``/``ske``/``skv`` (``BlobSASAuthenticator``): the
  real protocol, with the app's real azure-storage-blob client on both sides.
"""

from __future__ import annotations

import logging
from pathlib import Path

from devtools.azurite import DEV_ACCOUNT_NAME, Azurite, AzuriteError
from devtools.tls import shared_ca

log = logging.getLogger(__name__)


class AzuriteBlob(Azurite):
    """One ``azurite-blob`` process (HTTPS, OAuth basic) owned by this object; ``account_url`` once started."""

    def __init__(self, repo_root: Path | None = None) -> None:
        super().__init__(repo_root, tables=False)

    @property
    def executable(self) -> Path:
        return self._repo_root / "node_modules" / ".bin" / "azurite-blob"

    def command(self, port: int, *, service: str = "blob") -> list[str]:
        cert, key = shared_ca().server_pem_files
        return [
            str(self.executable),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(port),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            "--inMemoryPersistence",
            "--oauth", "basic",
            "--cert", str(cert),
            "--key", str(key),
        ]  # fmt: skip

    def start(self) -> AzuriteBlob:
        if not self.executable.exists():
            raise AzuriteError(f"Azurite is not installed: run `npm ci` in {self._repo_root}")
        self._proc, self._port = self._launch("blob", self._port or 0)
        log.info("Azurite blob service pid %d listening on https://127.0.0.1:%d", self._proc.pid, self._port)
        return self

    def __enter__(self) -> AzuriteBlob:
        return self.start()

    @property
    def account_url(self) -> str:
        """The blob endpoint of the emulator's account (path-style: ``https://127.0.0.1:<port>/<account>``)."""
        return f"https://127.0.0.1:{self.port}/{DEV_ACCOUNT_NAME}"
