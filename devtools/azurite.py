"""Start and stop a real Azurite queue service for the tests and the local demo.

Azure Storage queues cannot be reached from these machines, but Azurite (the emulator that
Microsoft ships on npm, pinned in package.json) speaks the same REST protocol, so the queue
semantics the app depends on (visibility, dequeue counts, pop receipts) are the real ones.

Why a launcher rather than "run azurite on 10001":

* ``--queuePort 0`` lets the OS pick a free port, so parallel test runs and a developer's own
  Azurite never collide; the real port is parsed from Azurite's startup line.
* The process is started with ``Popen`` (no shell) and stopped by *its* pid, so we never kill
  somebody else's Azurite.
* ``persist_dir`` switches from ``--inMemoryPersistence`` to ``--location <dir>``, so
  :meth:`Azurite.restart` can prove that messages survive an emulator restart.

Usage::

    with Azurite() as azurite:
        service = azurite.queue_service()
        service.create_queue("work")
"""

from __future__ import annotations

import collections
import logging
import re
import subprocess
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType

from azure.storage.queue import QueueServiceClient

__all__ = [
    "DEV_ACCOUNT_KEY",
    "DEV_ACCOUNT_NAME",
    "Azurite",
    "AzuriteError",
    "dev_connection_string",
]

log = logging.getLogger(__name__)

# Azurite's well-known development account. The key is published in Microsoft's docs and
# hard-coded in every Azurite/Storage Emulator install: it is not a secret.
DEV_ACCOUNT_NAME = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

_LISTENING = re.compile(r"successfully listens on https?://[^\s:]+:(\d+)")
_DEFAULT_REPO_ROOT = Path(__file__).resolve().parent.parent
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0


def dev_connection_string(port: int, host: str = "127.0.0.1") -> str:
    """The devstoreaccount1 connection string for an Azurite queue endpoint on ``port``."""
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={DEV_ACCOUNT_NAME};"
        f"AccountKey={DEV_ACCOUNT_KEY};"
        f"QueueEndpoint=http://{host}:{port}/{DEV_ACCOUNT_NAME};"
    )


def _terminate(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()


class AzuriteError(RuntimeError):
    """Azurite is missing, did not start, or was used before it started."""


class Azurite:
    """One ``azurite-queue`` process owned by this object.

    ``port=0`` (the default) asks the OS for a free port; after :meth:`start` the chosen port
    is in :attr:`port` and is reused by :meth:`restart`, so clients built from
    :attr:`connection_string` keep working across a restart.
    """

    def __init__(
        self,
        repo_root: Path | None = None,
        *,
        persist_dir: Path | None = None,
        port: int = 0,
    ) -> None:
        self._repo_root = (repo_root or _DEFAULT_REPO_ROOT).resolve()
        self._persist_dir = persist_dir
        self._requested_port = port
        self._port: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[str]], Azurite] | None = None
        # The last lines Azurite wrote, for error messages when it fails to start.
        self._tail: collections.deque[str] = collections.deque(maxlen=50)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def executable(self) -> Path:
        """The npm-installed launcher (``node_modules/.bin/azurite-queue``)."""
        return self._repo_root / "node_modules" / ".bin" / "azurite-queue"

    def command(self, port: int) -> list[str]:
        """The exact argv used to start Azurite on ``port`` (0 = any free port).

        ``--skipApiVersionCheck``: azure-storage-queue 12.18 sends an API version newer than
        Azurite 3.35 knows. ``--loose``: ignore headers Azurite does not implement.
        ``--disableTelemetry``: otherwise Azurite tries to reach the internet.
        """
        cmd = [
            str(self.executable),
            "--queueHost", "127.0.0.1",
            "--queuePort", str(port),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]
        if self._persist_dir is None:
            cmd.append("--inMemoryPersistence")
        else:
            cmd += ["--location", str(self._persist_dir)]
        return cmd

    def start(self) -> Azurite:
        """Start Azurite and block until it listens; returns ``self`` for chaining."""
        if self._proc is not None and self._proc.poll() is None:
            raise AzuriteError(f"Azurite is already running (pid {self._proc.pid})")
        if not self.executable.exists():
            raise AzuriteError(f"Azurite is not installed: run `npm ci` in {self._repo_root}")
        if self._persist_dir is not None:
            self._persist_dir.mkdir(parents=True, exist_ok=True)
        port = self._port if self._port is not None else self._requested_port
        self._tail.clear()
        listening = threading.Event()
        found_port: list[int] = []
        proc = subprocess.Popen(
            self.command(port),
            cwd=self._repo_root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            # Own session: a Ctrl-C in the demo's terminal reaches Python, which then stops
            # Azurite gracefully (so a persistent workspace is flushed) instead of the
            # terminal's SIGINT killing it mid-write.
            start_new_session=True,
        )
        self._proc = proc
        # Should the owner forget stop() (a crashed test, an exception in the demo), do not
        # leave an orphaned emulator behind: terminate it at garbage collection or exit.
        self._finalizer = weakref.finalize(self, _terminate, proc)

        def pump() -> None:
            # Azurite logs every request to stdout; keep draining it so the pipe never fills
            # and blocks the emulator. Only the tail is kept (for start-up errors).
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip()
                self._tail.append(line)
                if not listening.is_set():
                    match = _LISTENING.search(line)
                    if match:
                        found_port.append(int(match.group(1)))
                        listening.set()
                log.debug("azurite[%d]: %s", proc.pid, line)
            listening.set()  # EOF: the process is gone; unblock start()

        self._reader = threading.Thread(target=pump, name=f"azurite-{proc.pid}", daemon=True)
        self._reader.start()
        if not listening.wait(_START_TIMEOUT_S) or not found_port:
            self._kill()
            tail = "\n".join(self._tail) or "(no output)"
            raise AzuriteError(f"Azurite did not start (command: {self.command(port)}):\n{tail}")
        self._port = found_port[0]
        log.info("Azurite queue service pid %d listening on 127.0.0.1:%d", proc.pid, self._port)
        return self

    def stop(self) -> None:
        """Stop the process we started: SIGTERM (Azurite flushes its workspace), then kill."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("Azurite pid %d ignored SIGTERM; killing it", proc.pid)
                self._kill()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._finalizer is not None:
            self._finalizer.detach()
        self._proc = None
        self._finalizer = None
        self._reader = None

    def restart(self, downtime_seconds: float = 0.5) -> None:
        """Stop, stay down for ``downtime_seconds``, start again on the same port.

        With ``persist_dir`` the queues and messages survive; in memory they are lost (as
        with a real in-memory emulator).
        """
        if self._port is None:
            raise AzuriteError("Azurite was never started; nothing to restart")
        self.stop()
        time.sleep(downtime_seconds)
        self.start()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(_STOP_TIMEOUT_S)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- connection ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def port(self) -> int:
        """The port Azurite listens on (known once started; kept across :meth:`restart`)."""
        if self._port is None:
            raise AzuriteError("Azurite has not been started yet")
        return self._port

    @property
    def connection_string(self) -> str:
        """A devstoreaccount1 connection string for this instance (contains the public dev key)."""
        return dev_connection_string(self.port)

    def queue_service(self) -> QueueServiceClient:
        """A client for this instance's queue service."""
        return QueueServiceClient.from_connection_string(self.connection_string)

    def __repr__(self) -> str:
        return f"Azurite(port={self._port}, pid={self.pid}, persist_dir={self._persist_dir})"
