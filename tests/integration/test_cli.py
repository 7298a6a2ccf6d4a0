"""``submit`` and ``events`` against a real Azurite: what the trigger reads, what a person sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.base.errors import FieldError
from shared.outcomes import events
from tests.integration.conftest import Queues, drain
from tests.unit.cli.test_cli import cli

pytestmark = pytest.mark.integration


def test_submit_enqueues_each_request_as_the_trigger_expects(
    app_env: dict[str, str], queues: Queues, tmp_path: Path
) -> None:
    lines = tmp_path / "requests.jsonl"
    lines.write_text('{"id": "a-1", "image": "busybox"}\n{"id": "a-2", "image": "busybox"}\n')
    out = cli("submit", str(lines), env=app_env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("queued ") == 2
    bodies = [json.loads(text) for text in drain(queues.requests)]  # host.json: messageEncoding none
    assert [b["id"] for b in bodies] == ["a-1", "a-2"]


def test_events_prints_readable_lines_and_json(app_env: dict[str, str], queues: Queues) -> None:
    from datetime import UTC, datetime

    text = events.request_rejected(
        source="/vnode-batch",
        message_id="m-9",
        body=b"{}",
        errors=[FieldError("image", "required")],
        now=datetime(2026, 11, 27, tzinfo=UTC),
        key="k-9",
    )
    queues.events.send_message(text)
    queues.events.send_message(text)
    human = cli("events", "--count", "1", env=app_env)
    assert human.returncode == 0, human.stderr
    assert "request.rejected" in human.stdout
    assert "key=k-9" in human.stdout
    assert "error=image: required" in human.stdout
    machine = cli("events", "--json", env=app_env)
    assert json.loads(machine.stdout.strip())["id"] == json.loads(text)["id"]
    assert queues.count(queues.events) == 0  # events are consumed
