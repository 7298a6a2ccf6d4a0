"""GET /api/summary's body from ledger records and the pods' holdings (``shared.ledger.summary``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shared.capacity.fairshare import Held
from shared.ledger.records import State, advance, new_record
from shared.ledger.summary import Holdings, scan_filter, summarize
from shared.teams.model import Teams, parse

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=24)
TEAMS = parse(
    {
        "version": 1,
        "teams": [
            {"name": "a", "nominal": {"cores": 50, "containerGroups": 50}},
            {
                "name": "b",
                "nominal": {"cores": 30, "containerGroups": 30},
                "borrowingLimit": {"cores": 20, "containerGroups": 10},
            },
        ],
    }
)


def record(key: str, state: State, team: str | None, *, at: datetime = NOW, cost: float | None = None):  # type: ignore[no-untyped-def]
    r = new_record(key, State.RECEIVED, at - timedelta(minutes=5), team=team)
    if state != State.RECEIVED:
        outcome = {"cost": {"amount": cost, "currency": "USD"}} if cost is not None else None
        moved = advance(r, state, at, outcome=outcome)
        assert moved is not None
        r = moved
    return r


def body(records, *, visible=None, holdings=None, teams=TEAMS):  # type: ignore[no-untyped-def]
    return summarize(
        records,
        holdings=holdings,
        teams=teams,
        visible=visible,
        budget=(100, 100),
        since=SINCE,
        now=NOW,
        currency="USD",
    )


def test_each_team_shows_running_waiting_by_reason_finished_and_cost_in_the_window() -> None:
    records = [
        record("a1", State.RUNNING, "a"),
        record("a2", State.SUBMITTED, "a"),
        record("a3", State.WAITING_FOR_CAPACITY, "a"),
        record("a4", State.WAITING_FOR_CAPACITY, "a"),
        record("a5", State.RECEIVED, "a"),
        record("a6", State.SUCCEEDED, "a", cost=1.25),
        record("a7", State.FAILED, "a", cost=0.5),
        record("a8", State.DEADLETTERED, "a"),
        record("a9", State.SUCCEEDED, "a", at=NOW - timedelta(hours=30), cost=9.0),  # before the window
        record("b1", State.CANCELLED, "b", cost=0.25),
        record("b2", State.REJECTED, "b"),
    ]
    held = Holdings(Held(Decimal("12.5"), 7), {"a": Held(Decimal(10), 5), "b": Held(Decimal("2.5"), 2)})
    out = body(records, holdings=held)
    assert out["at"] == "2026-12-07T02:00:00.000Z"
    assert out["capacity"] == {
        "cores": {"inUse": 12.5, "budget": 100.0},
        "groups": {"inUse": 7, "budget": 100},
        "waiting": 3,
    }
    a, b = out["teams"]
    assert a == {
        "team": "a",
        "running": 2,
        "waiting": 3,
        "waitingByReason": {"received": 1, "waiting-for-capacity": 2},
        "cores": {"inUse": 10.0, "share": 50.0, "borrowLimit": None},
        "groups": {"inUse": 5, "share": 50, "borrowLimit": None},
        "finished": {"succeeded": 1, "failed": 1, "cancelled": 0, "rejected": 0, "deadlettered": 1},
        "cost": {"amount": 1.75, "currency": "USD"},
    }
    assert b["cores"] == {"inUse": 2.5, "share": 30.0, "borrowLimit": 20.0}
    assert b["groups"] == {"inUse": 2, "share": 30, "borrowLimit": 10}
    assert b["finished"]["cancelled"] == 1
    assert b["finished"]["rejected"] == 1
    assert b["cost"]["amount"] == 0.25


def test_a_team_member_sees_only_its_rows_but_the_whole_capacity() -> None:
    records = [record("a1", State.WAITING_FOR_CAPACITY, "a"), record("b1", State.WAITING_FOR_CAPACITY, "b")]
    out = body(records, visible=("b",), holdings=Holdings(Held(Decimal(4), 2), {"a": Held(Decimal(4), 2)}))
    assert [t["team"] for t in out["teams"]] == ["b"]
    assert out["teams"][0]["cores"]["inUse"] == 0.0
    assert out["capacity"]["waiting"] == 2
    assert out["capacity"]["cores"]["inUse"] == 4.0


def test_a_team_with_nothing_yet_still_has_its_row_and_a_caller_of_no_team_sees_none() -> None:
    assert [t["team"] for t in body([])["teams"]] == ["a", "b"]
    assert body([record("a1", State.RUNNING, "a")], visible=())["teams"] == []


def test_without_a_teams_file_requests_of_no_team_are_one_row_with_null_shares() -> None:
    records = [record("x", State.RUNNING, None), record("y", State.WAITING_FOR_CLUSTER, None)]
    out = body(records, teams=Teams())
    (row,) = out["teams"]
    assert row["team"] is None
    assert (row["running"], row["waiting"], row["waitingByReason"]) == (1, 1, {"waiting-for-cluster": 1})
    assert row["cores"] == {"inUse": 0.0, "share": None, "borrowLimit": None}


def test_a_cost_in_another_currency_is_not_added() -> None:
    euro = record("a1", State.SUCCEEDED, "a", cost=3.0)
    euro = replace(euro, outcome={"cost": {"amount": 3.0, "currency": "EUR"}})
    assert body([euro, record("a2", State.SUCCEEDED, "a", cost=1.0)])["teams"][0]["cost"]["amount"] == 1.0


def test_the_scan_selects_live_requests_and_those_updated_in_the_window() -> None:
    text, params = scan_filter(SINCE)
    assert text.startswith("RowKey eq 'request' and ( ")
    assert "updatedAt ge @since )" in text
    assert params["since"] == "2026-12-06T02:00:00.000Z"
    live = {v for k, v in params.items() if k != "since"}
    assert live == {"received", "waiting-for-cluster", "waiting-for-capacity", "submitted", "running"}
