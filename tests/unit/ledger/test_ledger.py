"""The ledger's pure rules: transitions, entity round trip, what it never stores, page tokens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.ledger.records import (
    TERMINAL,
    Query,
    State,
    advance,
    allowed,
    decode_page_token,
    encode_page_token,
    from_entity,
    new_record,
    partition_key,
    query_filter,
    summary,
    to_entity,
    view,
)

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
@pytest.mark.parametrize("target", list(State))
def test_terminal_states_are_final(terminal: State, target: State) -> None:
    assert not allowed(terminal, target)


@pytest.mark.parametrize(
    ("current", "target", "ok"),
    [
        (State.RECEIVED, State.WAITING_FOR_CLUSTER, True),
        (State.WAITING_FOR_CLUSTER, State.WAITING_FOR_CAPACITY, True),
        (State.WAITING_FOR_CAPACITY, State.WAITING_FOR_CLUSTER, True),
        (State.WAITING_FOR_CLUSTER, State.RECEIVED, False),
        (State.RECEIVED, State.SUBMITTED, True),
        (State.SUBMITTED, State.RUNNING, True),
        (State.RUNNING, State.SUBMITTED, False),
        (State.RECEIVED, State.SUCCEEDED, True),  # the reconciler repairs a lost "submitted"
        (State.SUBMITTED, State.REJECTED, False),  # a Job exists: only its outcome ends it
        (State.SUBMITTED, State.DEADLETTERED, False),
        (State.WAITING_FOR_CLUSTER, State.DEADLETTERED, True),
        (State.RUNNING, State.CANCELLED, True),
        (State.RECEIVED, State.CANCELLED, True),
        (State.RUNNING, State.RUNNING, False),
    ],
)
def test_transitions(current: State, target: State, ok: bool) -> None:
    assert allowed(current, target) is ok


@pytest.mark.parametrize(
    ("current", "target", "ok"),
    [
        (State.SUBMITTED, State.WAITING_FOR_CAPACITY, True),
        (State.RUNNING, State.WAITING_FOR_CAPACITY, True),
        (State.RUNNING, State.WAITING_FOR_CLUSTER, False),  # only ACI's capacity refusal goes back
        (State.RUNNING, State.RECEIVED, False),
        (State.FAILED, State.WAITING_FOR_CAPACITY, False),
        (State.CANCELLED, State.WAITING_FOR_CAPACITY, False),  # a cancel wins over a give-back
        (State.SUCCEEDED, State.WAITING_FOR_CAPACITY, False),
    ],
)
def test_a_capacity_give_back_is_the_one_move_backwards(current: State, target: State, ok: bool) -> None:
    assert allowed(current, target, requeued=True) is ok
    assert not allowed(current, target)  # never without the give-back


def test_a_give_back_keeps_the_history_and_the_next_attempt_moves_forward_again() -> None:
    r = new_record("k1", State.RECEIVED, T0)
    running = advance(advance(r, State.SUBMITTED, T0) or r, State.RUNNING, T0 + timedelta(seconds=1))
    assert running is not None
    back = advance(running, State.WAITING_FOR_CAPACITY, T0 + timedelta(seconds=2), attempts=1, requeued=True)
    assert back is not None
    assert back.state == State.WAITING_FOR_CAPACITY
    assert back.attempts == 1
    assert set(back.times) == {"received", "submitted", "running", "waiting-for-capacity"}
    again = advance(back, State.SUBMITTED, T0 + timedelta(seconds=3))
    assert again is not None
    assert again.times["submitted"] == "2026-11-29T12:00:00.000Z"


def test_same_step_twice_is_a_no_op_and_times_are_kept() -> None:
    r = new_record("k1", State.RECEIVED, T0)
    r2 = advance(r, State.SUBMITTED, T0 + timedelta(seconds=1), job_name="vnb-k1")
    assert r2 is not None
    assert advance(r2, State.SUBMITTED, T0 + timedelta(seconds=5)) is None
    done = advance(r2, State.SUCCEEDED, T0 + timedelta(seconds=9), outcome={"exitCode": 0})
    assert done is not None
    assert done.times == {
        "received": "2026-11-29T12:00:00.000Z",
        "submitted": "2026-11-29T12:00:01.000Z",
        "succeeded": "2026-11-29T12:00:09.000Z",
    }
    assert done.job_name == "vnb-k1"


def test_entity_round_trip() -> None:
    r = new_record(
        "inv-2026",
        State.RECEIVED,
        T0,
        labels={"team": "billing", "example.com/tier": "gold"},
        correlation_id="c-9",
        image="mcr.microsoft.com/x:1",
        content_hash="abc",
        source="api",
    )
    r = advance(r, State.WAITING_FOR_CLUSTER, T0, reason="cluster Creating", attempts=2)
    assert r is not None
    entity = to_entity(r)
    assert entity["PartitionKey"] == "inv-2026"
    assert all(k.isidentifier() for k in entity)  # Table storage property names
    back = from_entity(entity)
    assert back == r


def test_the_ledger_never_keeps_env_command_messages_or_logs() -> None:
    secret = "s3cr3t-value-9f2"
    outcome = {
        "outcome": "Failed",
        "reason": "Error",
        "exitCode": 3,
        "message": f"died: {secret}",
        "logTail": [{"pod": "p", "text": secret}],
        "durationSeconds": 4,
    }
    kept = summary(outcome)
    assert kept == {"outcome": "Failed", "reason": "Error", "exitCode": 3, "durationSeconds": 4}
    r = new_record("k", State.RECEIVED, T0, outcome=outcome)
    assert secret not in json.dumps(to_entity(r))
    assert secret not in json.dumps(view(r))


def test_unsafe_keys_are_hashed_for_the_partition_key() -> None:
    assert partition_key("abc-1") == "abc-1"
    pk = partition_key("a/b#c?")
    assert pk.startswith("~")
    assert "/" not in pk


def test_label_filter_uses_parameters_not_string_splicing() -> None:
    text, params = query_filter(Query(state=State.RUNNING, labels=(("team", "o'brien"),), since=T0))
    assert "o'brien" not in text
    assert params["state"] == "running"
    assert params["label0"] == "o'brien"
    assert params["since"] == "2026-11-29T12:00:00.000Z"


@given(st.dictionaries(st.sampled_from(["NextPartitionKey", "NextRowKey"]), st.text(max_size=40), min_size=1))
def test_page_token_round_trip(token: dict[str, str]) -> None:
    text = encode_page_token(token)
    assert "=" not in text
    assert "+" not in text
    assert "/" not in text
    assert decode_page_token(text) == token


@pytest.mark.parametrize("bad", ["", "!!", "a" * 3000, "eyJ4IjoxfQ", "W10"])
def test_bad_page_tokens_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="page token"):
        decode_page_token(bad)
