"""The deadletter service: one event per poisoned message, keyed by the request, whatever the body.

A failed deadletter invocation would leave the message in ``<requests>-poison`` for good (that
queue has no poison queue of its own), so "never raises" is checked over arbitrary input.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.cluster.readiness import Readiness
from shared.config.settings import Settings
from shared.flows.deadletter import deadletter
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound, Outcome
from shared.intake.deferral import ENVELOPE, wrap
from shared.outcomes.events import MAX_EVENT_BYTES, REQUEST_DEADLETTERED, deadlettered_id, stable_id
from tests.conftest import make_env
from tests.unit.flows.test_reconcile_events import validate_event

SETTINGS = Settings.from_env(make_env())
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"


def poison(body: bytes, *, copy: int = 1) -> dict[str, Any]:
    """The event for one poison copy of ``body``: each copy is a new message (new id, new time)."""
    message = Inbound(
        message_id=f"poison-copy-{copy}", body=body, dequeue_count=1, inserted_at=T0 + timedelta(minutes=copy)
    )
    return validate_event(deadletter(message, settings=SETTINGS, now=T0 + timedelta(minutes=copy, seconds=1)))


def test_two_poison_copies_of_one_request_give_one_event_id() -> None:
    body = json.dumps({"image": IMAGE, "command": ["false"]}).encode()  # no id: the body decides
    first, second = poison(body, copy=1), poison(body, copy=2)
    assert first["id"] == second["id"] == stable_id(REQUEST_DEADLETTERED, "body", hashlib.sha256(body).hexdigest())
    assert first["data"]["requestKey"] is None
    assert first["data"]["poisonedAt"] != second["data"]["poisonedAt"]  # what differs is only when
    assert poison(body + b" ")["id"] != first["id"]


def test_the_request_id_is_the_key_and_names_the_event() -> None:
    event = poison(json.dumps({"id": "order-42", "image": IMAGE, "correlationId": "c-42"}).encode())
    data = event["data"]
    assert event["id"] == deadlettered_id(key="order-42", body=b"")
    assert (data["requestKey"], data["correlationId"], event["subject"]) == ("order-42", "c-42", "order-42")
    assert data["reason"] == "MaxDequeueCountExceeded"
    assert data["queue"] == f"{SETTINGS.requests_queue}-poison"
    # The copy's own id, insertion time and dequeue count say nothing about the request.
    assert (data["messageId"], data["enqueuedAt"]) == (None, None)
    assert "dequeueCount" not in data
    assert "poison-copy" not in json.dumps(event)


def test_a_base64_request_is_read_like_dispatch_reads_it() -> None:
    body = base64.b64encode(json.dumps({"id": "b64-7", "image": IMAGE}).encode())
    assert poison(body)["data"]["requestKey"] == "b64-7"


def test_a_deferred_request_without_id_keeps_its_first_message_id_and_time() -> None:
    text = wrap({"image": IMAGE}, key="m-first", message_id="m-first", first_seen=T0, count=3, reason="Creating")
    data = poison(text.encode())["data"]
    assert (data["requestKey"], data["messageId"], data["enqueuedAt"]) == ("m-first", "m-first", "2026-11-29T12:00:00Z")


def test_poisoned_and_cluster_not_ready_events_of_one_request_share_the_id() -> None:
    """A request that gave up waiting and one of its duplicates that was poisoned are one outcome."""
    body = json.dumps({"id": "same-1", "image": IMAGE}).encode()

    class NeverReady:
        def check(self) -> Readiness:
            return Readiness(cluster=None, reason="cluster: Creating")

    late = T0 + timedelta(seconds=SETTINGS.bootstrap_max_wait_seconds + 1)
    result = dispatch(
        Inbound(message_id="m-1", body=body, inserted_at=T0),
        settings=SETTINGS,
        gate=NeverReady(),
        requeue=lambda text, delay: None,
        now=lambda: late,
    )
    assert result.outcome is Outcome.DEADLETTERED
    assert json.loads(result.events[0])["id"] == poison(body)["id"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00binary", "not UTF-8"),
        (b"not json at all", "not JSON"),
        (b"[1, 2, 3]", "JSON, not an object"),
        (b"[" * 20_000, "nested past the JSON parser's recursion limit"),
        (b'{"id": 7, "image": 1}', "id of the wrong type"),
        (b'{"id": "' + b"k" * 300 + b'"}', "id longer than allowed"),
        (b'{"id": "\\ud800", "correlationId": "\\udfff"}', "lone surrogates (cannot be encoded as UTF-8)"),
        (b'{"correlationId": "' + b"c" * 70_000 + b'"}', "over 64 KiB"),
        (b"x" * 200_000, "far over 64 KiB"),
        (json.dumps({ENVELOPE: {"key": "k" * 500}, "request": {}}).encode(), "envelope missing fields"),
        (
            json.dumps(
                {
                    ENVELOPE: {"key": "k", "messageId": "m", "firstSeen": "0001-01-01T00:00:00+23:59", "count": 1},
                    "request": {"image": IMAGE},
                }
            ).encode(),
            "envelope time that cannot be written in UTC",
        ),
    ],
)
def test_bad_input_still_gives_exactly_one_event(body: bytes, why: str) -> None:
    event = poison(body)
    data = event["data"]
    assert data["bodySize"] == len(body), why
    kept = data["body"].encode() if "body" in data else base64.b64decode(data["bodyBase64"])
    assert body.startswith(kept), why  # what is kept is the start of the original, never rewritten
    assert data["bodyTruncated"] is (len(kept) < len(body)), why


JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
REQUEST_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=140) | JSON_VALUE,
        "correlationId": st.text(max_size=300) | JSON_VALUE,
        "image": JSON_VALUE,
        "env": JSON_VALUE,
    },
)
ENVELOPED = st.builds(
    lambda meta, request: {ENVELOPE: meta, "request": request},
    st.dictionaries(st.sampled_from(["key", "messageId", "firstSeen", "count", "reason"]), JSON_VALUE),
    REQUEST_LIKE,
)
BODIES = (
    st.binary(max_size=2048)
    | st.text(max_size=2048).map(str.encode)
    | JSON_VALUE.map(lambda v: json.dumps(v).encode())
    | REQUEST_LIKE.map(lambda v: json.dumps(v).encode())
    | ENVELOPED.map(lambda v: json.dumps(v).encode())
    | REQUEST_LIKE.map(lambda v: base64.b64encode(json.dumps(v).encode()))
    | st.tuples(st.binary(min_size=1, max_size=8), st.integers(8_000, 70_000)).map(lambda t: t[0] * (t[1] // len(t[0])))
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES)
def test_any_body_gives_one_valid_event_with_an_id_stable_across_copies(body: bytes) -> None:
    first = poison(body, copy=1)  # validates against the published schema, and fits one message
    second = poison(body, copy=2)
    assert first["id"] == second["id"]
    assert len(json.dumps(first, separators=(",", ":"), ensure_ascii=False).encode()) <= MAX_EVENT_BYTES
    key = first["data"]["requestKey"]
    assert first["id"] == deadlettered_id(key=key, body=body)
