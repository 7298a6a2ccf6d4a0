"""GET /api/summary's body (pure): per team, what runs and waits now, what it holds against its
share, and what finished and cost in a window (docs/api.md "Summary", docs/openapi.yaml ``Summary``).

Two sources, each for what it knows best:

* the **ledger** (one filtered scan: every live request, plus those updated since the window's
  start): ``running`` (``submitted`` or ``running``), ``waiting`` by state, ``finished`` by end
  state and ``cost`` of requests whose end falls in the window;
* the **cluster** (what the Jobs' pods hold now, ``shared.capacity.model.usage_of`` by team —
  passed in as :data:`HeldNow` because the ledger sits beside capacity, not above it):
  ``inUse`` cores and container groups. Not what the ledger believes: a Job reported but not
  yet deleted still holds its container groups, and the quota counts them.

``capacity`` is the whole app's (every team's) — what a caller needs to read its own team's
numbers against; the rows are only the teams the caller may see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from shared.base.times import parse_time
from shared.ledger.records import ACTIVE, ROW_KEY, TERMINAL, WAITING, Record, State, iso
from shared.teams.model import Teams

FINISHED_KEYS: Final = {
    State.SUCCEEDED: "succeeded",
    State.FAILED: "failed",
    State.CANCELLED: "cancelled",
    State.REJECTED: "rejected",
    State.DEADLETTERED: "deadlettered",
}
DEFAULT_WINDOW_HOURS: Final = 24


class Holds(Protocol):
    """Cores and container groups (``shared.capacity.fairshare.Held`` has this shape)."""

    @property
    def cores(self) -> Decimal: ...

    @property
    def groups(self) -> int: ...


@dataclass(frozen=True)
class Holdings:
    """What the app's pods hold now: in all, and by team label (None: Jobs of no team)."""

    total: Holds
    by_team: Mapping[str | None, Holds] = field(default_factory=dict)


HeldNow = Callable[[], Holdings | None]
"""Reads the cluster (two list calls); None when no cluster is ready (nothing can run then)."""


def scan_filter(since: datetime) -> tuple[str, dict[str, Any]]:
    """The OData filter of the one ledger scan: live requests, and any updated since ``since``
    (a request's end time is never after its last update). Spaces around ``@name``: the Tables
    SDK substitutes a parameter only when a space follows it."""
    live = sorted(s.value for s in WAITING | ACTIVE)
    parts = [f"state eq @s{i}" for i in range(len(live))] + ["updatedAt ge @since"]
    params: dict[str, Any] = {f"s{i}": v for i, v in enumerate(live)}
    params["since"] = iso(since)
    return f"RowKey eq '{ROW_KEY}' and ( " + " or ".join(parts) + " )", params


@dataclass
class _Row:
    running: int = 0
    waiting: dict[str, int] = field(default_factory=dict)
    finished: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINISHED_KEYS.values(), 0))
    cost: Decimal = Decimal(0)


def summarize(
    records: Iterable[Record],
    *,
    holdings: Holdings | None,
    teams: Teams,
    visible: tuple[str, ...] | None,
    budget: tuple[int, int],
    since: datetime,
    now: datetime,
    currency: str,
) -> dict[str, Any]:
    """The response body (docs/openapi.yaml ``Summary``).

    ``visible``: the teams the caller may see (None: every team, and requests of no team);
    ``budget``: (cores, container groups) of the capacity settings; ``currency``: the prices'
    (``VNB_PRICE_CURRENCY``) — a cost recorded in another currency (prices changed) is left out
    rather than added to amounts it cannot be added to."""
    rows: dict[str | None, _Row] = {}
    waiting_all = 0
    for record in records:
        row = rows.setdefault(record.team, _Row())
        if record.state in WAITING:
            waiting_all += 1
            row.waiting[record.state.value] = row.waiting.get(record.state.value, 0) + 1
        elif record.state in ACTIVE:
            row.running += 1
        elif record.state in TERMINAL:
            ended = parse_time(record.times.get(record.state.value) or record.updated_at)
            if ended is None or ended < since:
                continue
            row.finished[FINISHED_KEYS[record.state]] += 1
            cost = (record.outcome or {}).get("cost")
            if isinstance(cost, Mapping) and str(cost.get("currency") or currency) == currency:
                row.cost += Decimal(str(cost.get("amount") or 0))
    held = dict(holdings.by_team) if holdings is not None else {}
    names: list[str | None] = [t.name for t in teams.teams]
    names += sorted({n for n in (*rows, *held) if n is not None and n not in names})
    if None in rows or None in held:
        names.append(None)
    if visible is not None:
        names = [n for n in names if n is not None and n in visible]
    total_cores, total_groups = (holdings.total.cores, holdings.total.groups) if holdings else (Decimal(0), 0)
    return {
        "at": iso(now),
        "capacity": {
            "cores": {"inUse": float(total_cores), "budget": float(budget[0])},
            "groups": {"inUse": int(total_groups), "budget": int(budget[1])},
            "waiting": waiting_all,
        },
        "teams": [_team_row(n, rows.get(n) or _Row(), held.get(n), teams, currency) for n in names],
    }


def _team_row(name: str | None, row: _Row, held: Holds | None, teams: Teams, currency: str) -> dict[str, Any]:
    team = teams.get(name)
    cores = held.cores if held is not None else Decimal(0)
    groups = held.groups if held is not None else 0
    return {
        "team": name,
        "running": row.running,
        "waiting": sum(row.waiting.values()),
        "waitingByReason": dict(sorted(row.waiting.items())),
        "cores": {
            "inUse": float(cores),
            "share": None if team is None else float(team.cores),
            "borrowLimit": None if team is None or team.borrow_cores is None else float(team.borrow_cores),
        },
        "groups": {
            "inUse": int(groups),
            "share": None if team is None else team.groups,
            "borrowLimit": None if team is None else team.borrow_groups,
        },
        "finished": row.finished,
        "cost": {"amount": float(round(row.cost, 6)), "currency": currency},
    }
