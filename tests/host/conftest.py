"""Fixtures for the local host's tests: one real Azurite per session, fresh queues per test.

``make_host(queues=..., host=..., settings=..., **LocalHost kwargs)`` builds a
:class:`devtools.host.LocalHost` on ``tests/host/sample_app.py`` (not started; stopped at
teardown). The sample functions report what they saw in a probe file: :func:`probe`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from devtools.azurite import Azurite
from devtools.host import LocalHost

APP_DIR = Path(__file__).resolve().parent
FUNCTION_KEY = "test-function-key"
MASTER_KEY = "test-master-key"
FAST_QUEUES: dict[str, Any] = {"maxPollingInterval": "00:00:00.500", "maxDequeueCount": 3,
                               "visibilityTimeout": "00:00:00", "messageEncoding": "none"}


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite(port=0) as instance:
        yield instance


@pytest.fixture
def names() -> dict[str, str]:
    """App settings naming queues unique to this test, so tests never see each other's messages."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return {"WORK_QUEUE": f"{prefix}-work", "ECHO_QUEUE": f"{prefix}-echo", "RETURN_QUEUE": f"{prefix}-ret",
            "TICK_SCHEDULE": "0 0 0 1 1 *"}


@pytest.fixture
def probe_file(tmp_path: Path) -> Path:
    return tmp_path / "probe.jsonl"


def probe(path: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """What the sample functions recorded, oldest first (only ``kind`` when given)."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if kind is None or r["kind"] == kind]


@pytest.fixture
def make_host(azurite: Azurite, names: dict[str, str], probe_file: Path,
              tmp_path: Path) -> Iterator[Callable[..., LocalHost]]:
    built: list[LocalHost] = []

    def build(*, queues: dict[str, Any] | None = None, host: dict[str, Any] | None = None,
              settings: dict[str, str] | None = None, storage: dict[str, str] | None = None,
              timer: bool = False, **kwargs: Any) -> LocalHost:
        all_settings = {
            "PYTHON_SCRIPT_FILE_NAME": "sample_app.py",
            "PROBE_FILE": str(probe_file),
            **(storage if storage is not None else {"TestStorage": azurite.connection_string}),
            **names,
            **({} if timer else {"AzureWebJobs.tick.Disabled": "true"}),
            **(settings or {}),
        }
        host_json = {"version": "2.0", **(host or {}),
                     "extensions": {"queues": {**FAST_QUEUES, **(queues or {})}}}
        kwargs.setdefault("state_dir", tmp_path / "timers")
        kwargs.setdefault("function_keys", {"default": FUNCTION_KEY})
        kwargs.setdefault("master_key", MASTER_KEY)
        built.append(LocalHost(APP_DIR, settings=all_settings, host_json=host_json, **kwargs))
        return built[-1]

    yield build
    for host in built:
        host.stop(timeout=10)


@pytest.fixture
def queue(azurite: Azurite) -> Callable[[str], QueueClient]:
    """A raw-text client for a queue (messageEncoding none, like the host.json here)."""

    def client(name: str) -> QueueClient:
        return QueueClient.from_connection_string(azurite.connection_string, name)

    return client


def raw_messages(client: QueueClient) -> list[str]:
    """The raw text of every visible message on the queue (peek: up to 32, no dequeue)."""
    return [str(m.content) for m in client.peek_messages(max_messages=32)]


class FakeClock:
    """A UTC clock tests move by hand; thread-safe because timer threads read it."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2030, 1, 1, 12, 0, 1, tzinfo=UTC))
