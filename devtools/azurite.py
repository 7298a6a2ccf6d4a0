"""Start and stop real Azurite queue and table services for the tests and the local demo.

Azure Storage queues cannot be reached from these machines, but Azurite (the emulator that
Microsoft ships on npm, pinned in package.json) speaks the same REST protocol, so the queue
semantics the app depends on (visibility, dequeue counts, pop receipts) are the real ones.

Why a launcher rather than "run azurite on 10001":

* ``--queuePort 0`` / ``--tablePort 0`` let the OS pick free ports, so parallel test runs and a
  developer's own Azurite never collide. The queue service prints the bound port
  (azurite src/queue/main.js: "successfully listens on ${server.getHttpServerAddress()}");
  the table service prints only the *configured* one (src/table/main.js: "successfully
  started on ${config.host}:${config.port}", i.e. ``:0``), so its port is read from the
  process's listening socket in /proc (Linux; the machines these tests run on).
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
import os
import re
import signal
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
_TABLE_STARTED = re.compile(r"Table service successfully started on")
_DEFAULT_REPO_ROOT = Path(__file__).resolve().parent.parent
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0


def dev_connection_string(port: int, host: str = "127.0.0.1", *, table_port: int | None = None) -> str:
    """The devstoreaccount1 connection string for Azurite's queue endpoint on ``port`` (and its
    table endpoint on ``table_port``, when given)."""
    text = (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={DEV_ACCOUNT_NAME};"
        f"AccountKey={DEV_ACCOUNT_KEY};"
        f"QueueEndpoint=http://{host}:{port}/{DEV_ACCOUNT_NAME};"
    )
    if table_port is not None:
        text += f"TableEndpoint=http://{host}:{table_port}/{DEV_ACCOUNT_NAME};"
    return text


def _listening_port(pid: int) -> int | None:
    """The TCP port a process listens on, from /proc (its socket inodes ∩ /proc/net/tcp LISTEN)."""
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            # local_address is hex ip:port; st 0A is TCP_LISTEN; field 9 is the inode.
            if len(parts) > 9 and parts[3] == "0A" and parts[9] in inodes:
                return int(parts[1].rsplit(":", 1)[1], 16)
    return None


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
    """One ``azurite-queue`` and (``tables=True``) one ``azurite-table`` process owned by this object.

    ``port=0`` (the default) asks the OS for free ports; after :meth:`start` the chosen ports
    are in :attr:`port` / :attr:`table_port` and are reused by :meth:`restart`, so clients
    built from :attr:`connection_string` keep working across a restart.
    """

    def __init__(
        self,
        repo_root: Path | None = None,
        *,
        persist_dir: Path | None = None,
        port: int = 0,
        tables: bool = True,
    ) -> None:
        self._repo_root = (repo_root or _DEFAULT_REPO_ROOT).resolve()
        self._persist_dir = persist_dir
        self._requested_port = port
        self._tables = tables
        self._port: int | None = None
        self._table_port: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._table_proc: subprocess.Popen[str] | None = None
        self._readers: list[threading.Thread] = []
        self._finalizers: list[weakref.finalize[[subprocess.Popen[str]], Azurite]] = []
        # The last lines Azurite wrote, for error messages when it fails to start.
        self._tail: collections.deque[str] = collections.deque(maxlen=50)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def executable(self) -> Path:
        """The npm-installed launcher (``node_modules/.bin/azurite-queue``)."""
        return self._repo_root / "node_modules" / ".bin" / "azurite-queue"

    @property
    def table_executable(self) -> Path:
        return self._repo_root / "node_modules" / ".bin" / "azurite-table"

    def command(self, port: int, *, service: str = "queue") -> list[str]:
        """The exact argv used to start Azurite's ``service`` on ``port`` (0 = any free port).

        ``--skipApiVersionCheck``: azure-storage-queue 12.18 and azure-data-tables 12.7 send API
        versions newer than Azurite 3.35 knows. ``--loose``: ignore headers Azurite does not
        implement. ``--disableTelemetry``: otherwise Azurite tries to reach the internet.
        """
        exe = self.executable if service == "queue" else self.table_executable
        cmd = [
            str(exe),
            f"--{service}Host", "127.0.0.1",
            f"--{service}Port", str(port),
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
        self._tail.clear()
        port = self._port if self._port is not None else self._requested_port
        self._proc, self._port = self._launch("queue", port)
        log.info("Azurite queue service pid %d listening on 127.0.0.1:%d", self._proc.pid, self._port)
        if self._tables:
            try:
                self._table_proc, self._table_port = self._launch("table", self._table_port or 0)
            except AzuriteError:
                self.stop()
                raise
            log.info("Azurite table service pid %d listening on 127.0.0.1:%d", self._table_proc.pid, self._table_port)
        return self

    def _launch(self, service: str, port: int) -> tuple[subprocess.Popen[str], int]:
        listening = threading.Event()
        found_port: list[int] = []
        proc = subprocess.Popen(
            self.command(port, service=service),
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
        # Should the owner forget stop() (a crashed test, an exception in the demo), do not
        # leave an orphaned emulator behind: terminate it at garbage collection or exit.
        self._finalizers.append(weakref.finalize(self, _terminate, proc))

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
                    elif _TABLE_STARTED.search(line):
                        bound = port or _listening_port(proc.pid)
                        if bound:
                            found_port.append(bound)
                        listening.set()
                log.debug("azurite-%s[%d]: %s", service, proc.pid, line)
            listening.set()  # EOF: the process is gone; unblock start()

        reader = threading.Thread(target=pump, name=f"azurite-{service}-{proc.pid}", daemon=True)
        reader.start()
        self._readers.append(reader)
        if not listening.wait(_START_TIMEOUT_S) or not found_port:
            if proc.poll() is None:
                proc.kill()
                proc.wait(_STOP_TIMEOUT_S)
            tail = "\n".join(self._tail) or "(no output)"
            raise AzuriteError(f"Azurite did not start (command: {self.command(port, service=service)}):\n{tail}")
        return proc, found_port[0]

    def stop(self) -> None:
        """Stop the processes we started: SIGTERM (Azurite flushes its workspace), then kill."""
        for proc in (self._proc, self._table_proc):
            if proc is None or proc.poll() is not None:
                continue
            if proc is self._table_proc:
                # azurite src/table/main.js closes (and saves its LokiJS database) on SIGINT or an
                # IPC "shutdown" only; SIGTERM ends it without saving (src/queue/main.js handles
                # both). Without this a persistent table service loses its recent writes.
                proc.send_signal(signal.SIGINT)
            else:
                proc.terminate()
            try:
                proc.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("Azurite pid %d ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait(_STOP_TIMEOUT_S)
        for reader in self._readers:
            reader.join(timeout=5)
        for finalizer in self._finalizers:
            finalizer.detach()
        self._proc = self._table_proc = None
        self._readers = []
        self._finalizers = []

    def restart(self, downtime_seconds: float = 0.5) -> None:
        """Stop, stay down for ``downtime_seconds``, start again on the same ports.

        With ``persist_dir`` the queues, tables, messages and entities survive; in memory they
        are lost (as with a real in-memory emulator).
        """
        if self._port is None:
            raise AzuriteError("Azurite was never started; nothing to restart")
        self.stop()
        time.sleep(downtime_seconds)
        self.start()

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
    def table_port(self) -> int:
        """The table service's port (known once started with ``tables=True``)."""
        if self._table_port is None:
            raise AzuriteError("Azurite's table service has not been started")
        return self._table_port

    @property
    def connection_string(self) -> str:
        """A devstoreaccount1 connection string for this instance (contains the public dev key),
        with a TableEndpoint when the table service runs."""
        return dev_connection_string(self.port, table_port=self._table_port if self._tables else None)

    def queue_service(self) -> QueueServiceClient:
        """A client for this instance's queue service."""
        return QueueServiceClient.from_connection_string(self.connection_string)

    def __repr__(self) -> str:
        return f"Azurite(port={self._port}, table_port={self._table_port}, pid={self.pid}, persist_dir={self._persist_dir})"
