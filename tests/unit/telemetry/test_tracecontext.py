"""W3C Trace Context values (www.w3.org/TR/trace-context/ §3.2, §3.3) and how a request carries them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from shared.intake import trace
from shared.intake.deferral import BUDGET, encoded_size, room, unwrap, wrap
from shared.telemetry.tracecontext import TRACESTATE_MAX, parse, tracestate
from tests.conftest import REPO

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("value", "trace_id"),
    [
        (VALID, "4bf92f3577b34da6a3ce929d0e0e4736"),
        (" " + VALID + " ", "4bf92f3577b34da6a3ce929d0e0e4736"),  # surrounding whitespace is trimmed
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "4bf92f3577b34da6a3ce929d0e0e4736"),
    ],
)
def test_a_valid_traceparent_gives_its_trace(value: str, trace_id: str) -> None:
    parsed = parse(value)
    assert parsed is not None
    assert parsed.trace_id == trace_id
    assert parsed.header().startswith("00-")


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        "",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase is not allowed
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is forbidden
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",  # version 00 has four fields
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        VALID + "x" * 300,
    ],
)
def test_an_invalid_traceparent_is_ignored(value: object) -> None:
    assert parse(value) is None
    assert trace.of(value) == trace.NONE


def test_tracestate_is_kept_only_within_its_limits() -> None:
    assert tracestate("congo=t61rcWkgMzE") == "congo=t61rcWkgMzE"
    assert tracestate("x" * (TRACESTATE_MAX + 1)) is None
    assert tracestate("vendor=é") is None  # not printable ASCII
    assert trace.of("bad", "congo=1") == trace.NONE  # no traceparent, no tracestate (§3.2.2)


def test_the_producers_fields_are_taken_off_the_request_and_nothing_else() -> None:
    data = {"image": "x", "traceparent": VALID, "tracestate": "a=1"}
    rest, given = trace.split(data)
    assert rest == {"image": "x"}
    assert given == trace.Trace(VALID, "a=1")
    assert trace.split({"image": "x"}) == ({"image": "x"}, trace.NONE)


def test_the_deferral_envelope_carries_the_trace_and_drops_a_forged_one() -> None:
    moment = datetime(2026, 12, 1, tzinfo=UTC)
    text = wrap(
        {"image": "x"}, key="k", message_id="m", first_seen=moment, count=1, reason="r", trace=trace.Trace(VALID, "a=1")
    )
    _, deferral = unwrap(json.loads(text))
    assert deferral is not None
    assert deferral.trace == trace.Trace(VALID, "a=1")
    forged = json.loads(text)
    forged["vnodeBatchDeferred"]["traceparent"] = "not a trace"
    _, deferral = unwrap(forged)
    assert deferral is not None  # the envelope still counts; only its trace is dropped
    assert deferral.trace == trace.NONE


def test_room_leaves_space_for_the_largest_trace_an_envelope_can_carry() -> None:
    request = {"image": "x", "env": {"A": "y" * 60_000}}
    spare = room(request, key="k", message_id="m")
    worst = trace.Trace(VALID, '"' * TRACESTATE_MAX)  # every character escaped by JSON
    text = wrap(
        request,
        key="k",
        message_id="m",
        first_seen=datetime(9999, 12, 31, tzinfo=UTC),
        count=10**10 - 1,
        reason="x" * 10_000,
        capacity_attempts=10**10 - 1,
        trace=worst,
    )
    assert encoded_size(text) <= BUDGET - spare


def test_with_telemetry_off_the_app_never_imports_opentelemetry() -> None:
    code = (
        "import sys, function_app\n"
        "from shared.telemetry import signals, names\n"
        "signals.add(names.RECEIVED)\n"
        "with signals.span('x') as s: assert s.traceparent is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]"
