"""``cli cost``'s grouping (shared.cost.report): by day, by label, currencies apart, CSV, bars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.cost.report import NO_LABEL, bar, costed, label_value, parse_since, to_csv, totals
from shared.ledger.records import Record, State

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def rec(key: str, day: str, amount: float, *, labels: dict[str, str] | None = None, currency: str = "USD") -> Record:
    cost: dict[str, Any] = {
        "amount": amount,
        "vcpuSeconds": 100.0,
        "gbSeconds": 160.0,
        "currency": currency,
        "failedAttempts": {"amount": amount / 4, "vcpuSeconds": 25.0, "gbSeconds": 40.0, "count": 1},
    }
    return Record(
        key=key,
        state=State.SUCCEEDED,
        labels=labels or {},
        outcome={"finishedAt": f"{day}T10:00:00Z", "cost": cost},
        updated_at=f"{day}T10:00:01Z",
    )


def test_since_accepts_relative_and_absolute_times() -> None:
    assert parse_since("30d", NOW) == NOW - timedelta(days=30)
    assert parse_since("12h", NOW) == NOW - timedelta(hours=12)
    assert parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="use 30d"):
        parse_since("last week", NOW)


def test_by_day_sums_each_day_in_order() -> None:
    items = [costed(r) for r in (rec("a", "2026-11-28", 0.5), rec("b", "2026-11-27", 0.25), rec("c", "2026-11-28", 1))]
    rows = totals([i for i in items if i], by="day")
    assert [(r.group, r.jobs, r.amount) for r in rows] == [
        ("2026-11-27", 1, Decimal("0.25")),
        ("2026-11-28", 2, Decimal("1.5")),
    ]
    assert rows[1].failed_amount == Decimal("0.375")


def test_by_label_largest_first_with_unlabelled_apart() -> None:
    records = [
        rec("a", "2026-11-28", 0.5, labels={"team": "data"}),
        rec("b", "2026-11-28", 2, labels={"example.com/team": "ml"}),
        rec("c", "2026-11-28", 0.1),
    ]
    rows = totals([c for c in map(costed, records) if c], by="team")
    assert [(r.group, r.amount) for r in rows] == [("ml", Decimal(2)), ("data", Decimal("0.5")), (NO_LABEL, Decimal("0.1"))]


def test_currencies_are_never_added() -> None:
    records = [rec("a", "2026-11-28", 1, currency="USD"), rec("b", "2026-11-28", 1, currency="EUR")]
    rows = totals([c for c in map(costed, records) if c], by="day")
    assert sorted((r.currency, r.amount) for r in rows) == [("EUR", Decimal(1)), ("USD", Decimal(1))]


def test_records_without_cost_are_left_out() -> None:
    assert costed(Record(key="w", state=State.WAITING_FOR_CLUSTER)) is None


def test_csv_has_a_header_and_one_line_per_row() -> None:
    rows = totals([c for c in map(costed, [rec("a", "2026-11-28", 0.5)]) if c], by="day")
    lines = to_csv(rows, by="day").splitlines()
    assert lines[0] == "day,currency,jobs,amount,vcpu_seconds,gb_seconds,failed_attempts_amount"
    assert lines[1] == "2026-11-28,USD,1,0.50000000,100.0,160.0,0.12500000"


def test_bars_scale_to_the_largest_row() -> None:
    assert bar(Decimal(1), Decimal(1), width=10) == "█" * 10
    assert bar(Decimal("0.5"), Decimal(1), width=10) == "█" * 5
    assert bar(Decimal(0), Decimal(1)) == ""
    assert 0 < len(bar(Decimal("0.001"), Decimal(1), width=10)) <= 1


def test_label_lookup_by_full_name_or_last_segment() -> None:
    assert label_value({"example.com/team": "ml"}, "team") == "ml"
    assert label_value({"team": "a", "x.io/team": "b"}, "team") == "a"
    assert label_value({}, "team") is None
