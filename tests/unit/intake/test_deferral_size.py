"""A request that may wait for the cluster must fit a queue message once wrapped (64 KiB).

The kind of bug: a valid request of ~65,400 bytes could not be re-queued while the cluster was
not ready (the deferral envelope pushed it past the queue's limit) and ended dead-lettered.
Now dispatch refuses such a request up front, whatever the cluster's state, with a field
error; everything it accepts can wait, whatever the reason text, count or first-seen time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.cluster.readiness import Readiness
from shared.config.settings import Settings
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound, Outcome
from shared.intake.deferral import BUDGET, QUEUE_MESSAGE_LIMIT, encoded_size, room, unwrap, wrap

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
MESSAGE_ID = "0b6a4f6e-1f0e-4c55-9a52-1f7a8c3b2d41"  # Storage message ids are GUIDs


def compact(data: dict[str, Any]) -> int:
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def request_of(size: int, *, fill: str = "x", key: str = "big-1") -> dict[str, Any]:
    """A valid request whose compact JSON is exactly ``size`` bytes (args of <= 4000 chars)."""
    data: dict[str, Any] = {"id": key, "image": IMAGE, "command": ["sh", "-c"], "args": []}
    while compact(data) < size:
        gap = size - compact(data)
        per = len(fill.encode())
        if not data["args"] or len(data["args"][-1]) >= 4000:
            data["args"].append("")
            continue
        room_here = min(4000 - len(data["args"][-1]), max(1, gap // per))
        data["args"][-1] += fill * room_here
    if compact(data) != size:
        pytest.skip("size not reachable with this fill")
    return data


class NotReady:
    def __init__(self, reason: str = "cluster: Creating") -> None:
        self.reason = reason

    def check(self) -> Readiness:
        return Readiness(cluster=None, reason=self.reason)


class NeverAsked:
    def check(self) -> Readiness:
        raise AssertionError("a request too large to wait must be refused before the cluster is asked")


def run(settings: Settings, body: bytes, gate: Any, *, at: datetime = T0) -> tuple[Any, list[str]]:
    sent: list[str] = []
    result = dispatch(
        Inbound(message_id=MESSAGE_ID, body=body, inserted_at=T0),
        settings=settings,
        gate=gate,
        requeue=lambda text, delay: sent.append(text),
        now=lambda: at,
    )
    return result, sent


def test_a_65400_byte_request_is_refused_up_front_with_a_field_error(settings: Settings) -> None:
    data = request_of(65_400)
    body = json.dumps(data, separators=(",", ":")).encode()
    assert len(body) == 65_400  # fits one queue message on its own
    result, sent = run(settings, body, NeverAsked())
    assert result.outcome is Outcome.REJECTED
    assert sent == []
    event = json.loads(result.events[0])
    [error] = event["data"]["errors"]
    assert error["field"] == "$body"
    assert "65400 bytes" in error["message"]
    assert "waits for the cluster" in error["message"]
    assert event["data"]["requestKey"] == "big-1"


def test_the_largest_request_that_can_wait_is_deferred_within_the_limit(settings: Settings) -> None:
    probe = request_of(1000)
    largest = 1000 + room(probe, key="big-1", message_id=MESSAGE_ID)
    data = request_of(largest)
    assert room(data, key="big-1", message_id=MESSAGE_ID) == 0
    result, [text] = run(settings, json.dumps(data).encode(), NotReady("x" * 5000))
    assert result.outcome is Outcome.DEFERRED
    assert encoded_size(text) <= BUDGET
    # deferred again much later (a long count, the same key): still within the limit
    for count_at in (timedelta(seconds=30), timedelta(seconds=3000)):
        again, [text] = run(settings, text.encode(), NotReady("é" * 5000), at=T0 + count_at)
        assert again.outcome is Outcome.DEFERRED
        assert encoded_size(text) <= BUDGET
    request, deferral = unwrap(json.loads(text))
    assert request == data
    assert deferral is not None
    assert deferral.count == 3
    one_more = request_of(largest + 1)
    refused, sent = run(settings, json.dumps(one_more).encode(), NeverAsked())
    assert refused.outcome is Outcome.REJECTED
    assert sent == []


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(60_000, 66_000),
    fill=st.sampled_from(["x", "é", "€", "😀", '"', "\\"]),
    reason=st.text(max_size=2000),
    count=st.integers(1, 10**9),
    micro=st.integers(0, 999_999),
)
def test_whatever_the_reason_or_count_an_accepted_request_fits_once_wrapped(
    size: int, fill: str, reason: str, count: int, micro: int
) -> None:
    per = len(json.dumps(fill, ensure_ascii=False).encode()) - 2  # '"' and '\\' are escaped: 2 bytes
    chars = max(0, size - 200) // per
    args = [fill * 4000] * (chars // 4000) + [fill * (chars % 4000)]
    data: dict[str, Any] = {"id": "k", "image": IMAGE, "command": ["sh"], "args": args}
    spare = room(data, key="k", message_id=MESSAGE_ID)
    text = wrap(
        data, key="k", message_id=MESSAGE_ID, first_seen=T0.replace(microsecond=micro), count=count, reason=reason
    )
    if spare >= 0:
        assert encoded_size(text) <= BUDGET
        assert unwrap(json.loads(text))[0] == data


def test_base64_counts_four_bytes_for_three() -> None:
    # host.json messageEncoding base64 (the host's default): 48 KiB of payload at most.
    assert encoded_size("a" * 3, "base64") == 4
    assert encoded_size("a" * (48 * 1024), "base64") == QUEUE_MESSAGE_LIMIT
    assert encoded_size("é", "none") == 2
