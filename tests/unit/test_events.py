"""Rejection and dead-letter events: CloudEvents 1.0, stable ids, and they fit in one message."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared import events
from shared.request import FieldError

NOW = datetime(2026, 11, 27, tzinfo=UTC)
QUEUE_LIMIT = 64 * 1024


def rejected(body: bytes, message_id: str = "m-1") -> dict[str, object]:
    text = events.request_rejected(
        source="/vnode-batch", message_id=message_id, body=body, errors=[FieldError("image", "required")], now=NOW
    )
    assert len(text.encode()) < QUEUE_LIMIT
    parsed = JSONFormat().read(CloudEvent, text.encode())
    assert parsed.get_type() == events.REQUEST_REJECTED
    result: dict[str, object] = json.loads(text)
    return result


def test_rejection_carries_errors_and_original_body() -> None:
    event = rejected(b'{"command": ["x"]}')
    data = event["data"]
    assert isinstance(data, dict)
    assert data["errors"] == [{"field": "image", "message": "required"}]
    assert data["body"] == '{"command": ["x"]}'
    assert data["bodyTruncated"] is False
    assert event["specversion"] == "1.0"


def test_huge_body_is_truncated_to_fit_one_queue_message() -> None:
    body = ("é" * 40_000).encode()  # 80 KB of two-byte characters
    data = rejected(body)["data"]
    assert isinstance(data, dict)
    assert data["bodyTruncated"] is True
    assert data["bodySize"] == len(body)
    assert str(data["body"]).startswith("éé")


def test_binary_body_is_kept_as_base64() -> None:
    body = b"\xff\x00\xfe" * 10
    data = rejected(body)["data"]
    assert isinstance(data, dict)
    assert base64.b64decode(str(data["bodyBase64"])) == body


def test_event_id_is_stable_per_message_and_differs_between_messages() -> None:
    assert rejected(b"x", "m-1")["id"] == rejected(b"x", "m-1")["id"]
    assert rejected(b"x", "m-1")["id"] != rejected(b"x", "m-2")["id"]


def test_deadletter_event() -> None:
    text = events.request_deadlettered(
        source="/vnode-batch",
        message_id="p-1",
        body=b'{"image": "x"}',
        dequeue_count=5,
        now=NOW,
        reason="MaxDequeueCountExceeded",
        detail="failed 5 times",
        queue="vnb-requests-poison",
        key="k",
    )
    event = json.loads(text)
    assert event["type"] == "io.vnodebatch.request.deadlettered"
    assert event["data"]["dequeueCount"] == 5
    assert event["data"]["requestKey"] == "k"
    assert event["subject"] == "k"
