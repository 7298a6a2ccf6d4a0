"""Fixtures for the local runner's tests: one real Azurite per session, fresh queues per test."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devtools.azurite import Azurite
from devtools.runner import LocalRunner
from tests.runner import sample_app


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite(port=0) as instance:
        yield instance


@pytest.fixture(autouse=True)
def _reset_probe() -> None:
    sample_app.PROBE.reset()


@pytest.fixture
def names() -> dict[str, str]:
    """App settings naming queues unique to this test, so tests never see each other's messages."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return {
        "WORK_QUEUE": f"{prefix}-work",
        "WORK_OUT_QUEUE": f"{prefix}-work-out",
        "ECHO_QUEUE": f"{prefix}-echo",
        "TICK_SCHEDULE": "*/5 * * * * *",
    }


FAST_QUEUES: dict[str, Any] = {"maxPollingInterval": "00:00:00.500", "maxDequeueCount": 3}


@pytest.fixture
def make_runner(azurite: Azurite, names: dict[str, str]) -> Iterator[Callable[..., LocalRunner]]:
    """Build runners for the sample app; every runner built here is stopped at teardown."""
    built: list[LocalRunner] = []

    def build(
        *, queues: dict[str, Any] | None = None, settings: dict[str, str] | None = None, **kwargs: Any
    ) -> LocalRunner:
        all_settings = {"TestStorage": azurite.connection_string, **names, **(settings or {})}
        host_json = {"version": "2.0", "extensions": {"queues": {**FAST_QUEUES, **(queues or {})}}}
        runner = LocalRunner(sample_app.app, settings=all_settings, host_json=host_json, **kwargs)
        built.append(runner)
        return runner

    yield build
    for runner in built:
        runner.stop(timeout=10)


@pytest.fixture
def queue(azurite: Azurite) -> Callable[..., QueueClient]:
    """A client for a queue; ``base64=True`` encodes like a well-behaved sender must."""

    def client(name: str, *, base64: bool = False) -> QueueClient:
        policy = TextBase64EncodePolicy() if base64 else None
        return QueueClient.from_connection_string(azurite.connection_string, name, message_encode_policy=policy)

    return client


def raw_messages(client: QueueClient) -> list[str]:
    """The raw text of every message on the queue (peek: up to 32, no dequeue)."""
    return [m.content for m in client.peek_messages(max_messages=32)]


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

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2030, 1, 1, 12, 0, 1, tzinfo=UTC))
