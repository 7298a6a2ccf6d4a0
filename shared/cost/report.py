"""``cli cost``'s numbers: ledger records → totals by day or by label (pure: no I/O).

Each finished (or cancelled) request's ledger record carries the ``cost`` of its Job (the same
object as in its event, without the per-index list). This module groups them: by the UTC day
the Job finished, or by the value of one label (``--by team``), one row per group and currency
(prices may change over time; amounts in different currencies are never added).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

NO_LABEL = "(none)"
_SINCE = re.compile(r"(\d+)([dhm])")


def parse_since(text: str, now: datetime) -> datetime:
    """``30d``, ``12h``, ``90m`` (before ``now``) or an ISO date/time (UTC if no zone).

    ValueError with a usable message otherwise.
    """
    match = _SINCE.fullmatch(text.strip())
    if match:
        amount, unit = int(match[1]), match[2]
        units = {"d": "days", "h": "hours", "m": "minutes"}
        return now - timedelta(**{units[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: use 30d, 12h, 90m or a date like 2026-11-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Costed:
    """One request's cost, as read from its ledger record."""

    key: str
    day: str
    labels: Mapping[str, str]
    currency: str
    amount: Decimal
    vcpu_seconds: Decimal
    gb_seconds: Decimal
    failed_amount: Decimal
    state: str


def costed(record: Any) -> Costed | None:
    """The cost of a ledger ``Record`` (None when it has none: still waiting, rejected, …)."""
    outcome = record.outcome or {}
    cost = outcome.get("cost")
    if not isinstance(cost, Mapping):
        return None
    finished = str(outcome.get("finishedAt") or record.updated_at or record.received_at or "")
    return Costed(
        key=record.key,
        day=finished[:10] or "unknown",
        labels=dict(record.labels),
        currency=str(cost.get("currency") or "?"),
        amount=Decimal(str(cost.get("amount") or 0)),
        vcpu_seconds=Decimal(str(cost.get("vcpuSeconds") or 0)),
        gb_seconds=Decimal(str(cost.get("gbSeconds") or 0)),
        failed_amount=Decimal(str((cost.get("failedAttempts") or {}).get("amount") or 0)),
        state=str(record.state),
    )


@dataclass
class Row:
    group: str
    currency: str
    jobs: int = 0
    amount: Decimal = Decimal(0)
    vcpu_seconds: Decimal = Decimal(0)
    gb_seconds: Decimal = Decimal(0)
    failed_amount: Decimal = Decimal(0)
    keys: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "currency": self.currency,
            "jobs": self.jobs,
            "amount": float(round(self.amount, 8)),
            "vcpuSeconds": float(round(self.vcpu_seconds, 3)),
            "gbSeconds": float(round(self.gb_seconds, 3)),
            "failedAttemptsAmount": float(round(self.failed_amount, 8)),
        }


def label_value(labels: Mapping[str, str], name: str) -> str | None:
    """A label by full name, or by its last segment (``team`` finds ``example.com/team``)."""
    if name in labels:
        return labels[name]
    found = [v for k, v in sorted(labels.items()) if k.rsplit("/", 1)[-1] == name]
    return found[0] if found else None


def totals(items: Iterable[Costed], *, by: str = "day") -> list[Row]:
    """Rows sorted by day (``by="day"``) or by amount, largest first (a label)."""
    rows: dict[tuple[str, str], Row] = {}
    for item in items:
        group = item.day if by == "day" else (label_value(item.labels, by) or NO_LABEL)
        row = rows.setdefault((group, item.currency), Row(group, item.currency))
        row.jobs += 1
        row.amount += item.amount
        row.vcpu_seconds += item.vcpu_seconds
        row.gb_seconds += item.gb_seconds
        row.failed_amount += item.failed_amount
        row.keys.append(item.key)
    if by == "day":
        return sorted(rows.values(), key=lambda r: (r.group, r.currency))
    return sorted(rows.values(), key=lambda r: (-r.amount, r.group, r.currency))


def to_csv(rows: Iterable[Row], *, by: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([by, "currency", "jobs", "amount", "vcpu_seconds", "gb_seconds", "failed_attempts_amount"])
    for r in rows:
        d = r.as_dict()
        writer.writerow(
            [
                r.group,
                r.currency,
                r.jobs,
                f"{d['amount']:.8f}",
                d["vcpuSeconds"],
                d["gbSeconds"],
                f"{d['failedAttemptsAmount']:.8f}",
            ]
        )
    return out.getvalue()


def bar(amount: Decimal, largest: Decimal, width: int = 30) -> str:
    """A horizontal bar (eighth-block resolution) of ``amount`` relative to ``largest``."""
    if largest <= 0 or amount <= 0:
        return ""
    eighths = int((amount / largest) * width * 8)
    full, rest = divmod(max(eighths, 1), 8)
    return "█" * full + ("" if rest == 0 else " ▏▎▍▌▋▊▉"[rest])
