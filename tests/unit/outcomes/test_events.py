"""Rejection and dead-letter events: CloudEvents 1.0, stable ids, and they fit in one message."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared.base.errors import FieldError
from shared.outcomes import events

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


def deadlettered(body: bytes, **kw: object) -> dict[str, object]:
    args: dict[str, object] = {
        "source": "/vnode-batch",
        "body": body,
        "now": NOW,
        "reason": "MaxDequeueCountExceeded",
        "detail": "poisoned",
        "queue": "vnb-requests-poison",
    }
    args.update(kw)
    text = events.request_deadlettered(**args)  # type: ignore[arg-type]
    assert len(text.encode()) < QUEUE_LIMIT
    result: dict[str, object] = json.loads(text)
    return result


def test_deadletter_event() -> None:
    event = deadlettered(b'{"image": "x"}', key="k", poisoned_at=NOW)
    assert event["type"] == "io.vnodebatch.request.deadlettered"
    data = event["data"]
    assert isinstance(data, dict)
    assert data["requestKey"] == "k"
    assert data["poisonedAt"] == "2026-11-27T00:00:00Z"
    assert (data["messageId"], data["enqueuedAt"]) == (None, None)  # not known: said so, not guessed
    assert "dequeueCount" not in data
    assert event["subject"] == "k"


def test_deadletter_id_follows_the_request_not_the_message() -> None:
    # Same key: one id, whatever the body (a deferred copy's envelope differs from the original).
    assert deadlettered(b"a", key="k")["id"] == deadlettered(b"b", key="k")["id"]
    assert deadlettered(b"a", key="k")["id"] != deadlettered(b"a", key="k2")["id"]
    # No key: the body decides, so two poison copies of one body agree and others differ.
    assert deadlettered(b"same")["id"] == deadlettered(b"same")["id"]
    assert deadlettered(b"same")["id"] != deadlettered(b"other")["id"]
    # A key is never confused with a body that happens to spell it.
    assert deadlettered(b"k")["id"] != deadlettered(b"x", key="k")["id"]
