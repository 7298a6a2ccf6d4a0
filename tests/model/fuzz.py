"""Fuzz targets over the queue path (dispatch) and the HTTP path (the requests API), for any
bytes: one terminal event or one 4xx, no traceback, nothing in the poison queue, and no ledger
change for keys the input did not own (a live request, ``victim``, sits in the ledger throughout).

The strategies mix raw bytes with near-valid requests (every schema field, ids and correlation
ids of every kind — lone surrogates, reserved characters, the victim's id — deferral envelopes
with any counters and times, base64 with and without a byte-order mark, truncations).
``tests/model/test_fuzz_paths.py`` runs them bounded; ``bench/fuzz.py --minutes N`` for longer.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

from shared.intake.decode import decode_body
from shared.intake.deferral import unwrap
from shared.ledger.records import partition_key
from tests.model.world import T0, World

VICTIM = "victim"
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"

text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\ud800", "a/b#c?", "x" * 300, VICTIM, "ok-1", "é", "\x00", "\ufeff"]),
)
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text)
json_value = st.recursive(
    scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=8
)
FIELDS = {
    "id": st.one_of(text, json_value, st.sampled_from([VICTIM, "ok-1", "ok-2"])),
    "image": st.one_of(st.just(IMAGE), text, st.sampled_from(["quay.io/x:1", "busybox"])),
    "command": st.one_of(st.lists(text, max_size=3), json_value),
    "args": st.one_of(st.lists(text, max_size=3), json_value),
    "env": st.one_of(st.dictionaries(text, text, max_size=3), json_value),
    "cpu": st.one_of(st.sampled_from(["500m", 1, 2, 0.05, "1e400", 64]), json_value),
    "memory": st.one_of(st.sampled_from(["512Mi", "1.5G", 1, "9999999Ti"]), json_value),
    "completions": st.one_of(st.integers(-2, 5), json_value),
    "parallelism": st.one_of(st.integers(-2, 5), json_value),
    "timeoutSeconds": st.one_of(st.integers(-1, 10**6), json_value),
    "retries": st.one_of(st.integers(-1, 12), json_value),
    "labels": st.one_of(
        st.dictionaries(st.one_of(text, st.just("é" * 40 + "/" + "k" * 300)), text, max_size=25), json_value
    ),
    "correlationId": st.one_of(text, json_value),
    "extra": json_value,
}


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=len(FIELDS)))
    out = {name: draw(FIELDS[name]) for name in names}
    if draw(st.booleans()):
        out.setdefault("image", IMAGE)
    return out


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    meta = {
        "key": draw(st.one_of(text, st.just(VICTIM), json_value)),
        "messageId": draw(st.one_of(text, json_value)),
        "firstSeen": draw(
            st.one_of(
                st.just(T0.isoformat()),
                st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-11-29T12:00:00"]),
                text,
                json_value,
            )
        ),
        "count": draw(st.one_of(st.integers(-5, 10**12), json_value)),
        "capacityAttempts": draw(st.one_of(st.integers(-(10**6), 10**6), st.just(1e400), json_value)),
        "reason": draw(text),
    }
    return {"vnodeBatchDeferred": meta, "request": draw(requests())}


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Any bytes a producer could send: raw, or JSON of a near-valid request or envelope, encoded
    as plain text or base64, with or without a byte-order mark, possibly truncated."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=300))
    value = draw(st.one_of(requests(), envelopes(), json_value))
    raw = json.dumps(value, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        raw = "\ufeff".encode() + raw if draw(st.booleans()) else raw
    if draw(st.integers(0, 3)) == 0:
        raw = base64.b64encode(raw)
        if draw(st.booleans()):
            raw = "\ufeff".encode() + raw
    if draw(st.integers(0, 7)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


def world_with_victim() -> World:
    """A world holding one live request (``victim``: submitted, its Job running)."""
    world = World()
    world.produce(json.dumps({"id": VICTIM, "image": IMAGE, "correlationId": "c-victim"}))
    world.deliver(world.queue[0])
    [name] = world.cluster.live()
    world.cluster.progress(name, "start")
    world.reconcile()
    world.sent.clear()
    return world


def _victim(world: World) -> Any:
    return world.table.rows[partition_key(VICTIM)]


def check_queue(raw: bytes) -> None:
    """One delivery of ``raw`` on the requests queue."""
    world = world_with_victim()
    before, rows = _victim(world), set(world.table.rows)
    message = world.produce(raw)
    outcome = world.deliver(message)  # an exception here is a traceback: the test fails
    assert outcome == "done", f"{outcome}: a message must never be retried into the poison queue"
    assert not any(m.poison for m in world.queue)
    terminal = [s.event for s in world.sent]
    assert len(terminal) <= 1, "more than one event for one message"
    if not terminal:  # a valid request: a Job, or it waits
        assert world.cluster.jobs or world.queue, "no event, no Job, no deferral: the message vanished"
    for event in terminal:
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        assert len(text.encode()) <= 64 * 1024
    assert _victim(world) == before, "the input changed a record it did not own"
    for key in set(world.table.rows) - rows:
        record = world.table.records_by_pk(key)
        assert record.key in (message.id, *(e["data"].get("requestKey") for e in terminal), _key_of(raw))


def _key_of(raw: bytes) -> str | None:
    """The id the input asks for, read as dispatch reads a body (plain or base64, enveloped)."""
    value, _ = decode_body(raw)
    if value is None:
        return None
    inner, _ = unwrap(value)
    return str(inner["id"]) if isinstance(inner.get("id"), str) else None


operations = st.one_of(
    st.tuples(
        st.just("submit"),
        bodies(),
        st.sampled_from(["application/json", "text/plain", "", "application/json; charset=utf-8"]),
    ),
    st.tuples(
        st.just("list"),
        st.dictionaries(
            st.sampled_from(["state", "label", "since", "pageToken", "limit", "other", "\ud800"]),
            st.one_of(
                text,
                st.lists(text, max_size=2),
                st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "²", "200"]),
            ),
            max_size=4,
        ),
    ),
    st.tuples(st.just("status"), st.one_of(text, st.just(VICTIM))),
    st.tuples(st.just("cancel"), text.filter(lambda k: k != VICTIM)),
)


def check_http(op: tuple[Any, ...]) -> None:
    """One HTTP call: a 2xx or a 4xx with a problem body (never a 5xx with no fault injected), its
    body valid UTF-8, the victim untouched."""
    world = world_with_victim()
    before = _victim(world)
    api = world.api
    kind = op[0]
    if kind == "submit":
        answer = api.handle(lambda: api.submit(op[1], content_type=op[2] or None))
    elif kind == "list":
        answer = api.handle(lambda: api.list(op[1]))
    elif kind == "status":
        answer = api.handle(lambda: api.status(op[1]))
    else:
        answer = api.handle(lambda: api.cancel(op[1]))
    assert 200 <= answer.status < 500, (answer.status, answer.body)
    answer.text().encode("utf-8")  # what the binding writes (charset utf-8): must encode
    if answer.status >= 400:
        assert answer.content_type == "application/problem+json"
    assert _victim(world) == before, "the call changed a record it did not own"
    if kind != "cancel":
        assert world.sent == []
