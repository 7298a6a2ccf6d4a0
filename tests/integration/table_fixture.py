"""Azurite's Table service for the idle-stop tests (the power record lives in Table storage).

``azurite-table --tablePort 0`` reports port 0 rather than the one it bound, so a free port is
picked first. Started with Popen (no shell) and stopped by its own pid.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from devtools.azurite import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME
from tests.conftest import REPO

__all__ = ["azurite_tables", "table_endpoint"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def table_endpoint(port: int) -> str:
    return f"TableEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT_NAME};"


@pytest.fixture(scope="session")
def azurite_tables() -> Iterator[int]:
    """The port of a running Azurite Table service (devstoreaccount1, in memory)."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(REPO / "node_modules" / ".bin" / "azurite-table"),
            "--tableHost", "127.0.0.1",
            "--tablePort", str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("Azurite Table service did not start") from None
            time.sleep(0.1)
    assert DEV_ACCOUNT_KEY
    yield port
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
