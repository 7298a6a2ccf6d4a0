"""``python -m shared.cli top``: a live terminal view of the app for people who live in the shell.

The same summary as the status page, from the same API (docs/openapi.yaml): ``GET /api/summary``
(running, waiting by reason, ACI capacity in use against the budget, each team's share, finished
and cost since midnight UTC) and ``GET /api/requests?state=waiting-for-…`` for the longest waits.
A caller sees its own teams only, an operator all (the API's tenancy). Refreshes every
``--interval`` seconds with rich's ``Live`` until Ctrl-C; ``--once`` prints one frame and exits
(0, or the API commands' exit codes: 2 for a refused call such as a wrong key, 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

# _problem: the API commands' error line and exit code; _of: cli summary's share notation.
from shared.base.times import iso, parse_time
from shared.cli.api import ApiClient, ApiError, _of, _problem, add_api_options, client_from

if TYPE_CHECKING:
    from rich.console import RenderableType

WAITING_STATES = ("waiting-for-capacity", "waiting-for-cluster")
PAGE = 200
MAX_PAGES = 5
"""Waiting records read per state and frame (at most ``PAGE * MAX_PAGES``): the ledger lists in
key order, not by age, so the longest waits are found by reading them all, up to this bound."""
OUTCOMES = ("succeeded", "failed", "cancelled", "rejected", "deadlettered")


@dataclass(frozen=True)
class Wait:
    """One waiting request, for the "longest waits" table."""

    id: str
    team: str | None
    reason: str
    seconds: float
    position: int | None = None
    estimated_start: str | None = None


@dataclass(frozen=True)
class Frame:
    """What one refresh read: the summary, the longest waits, and whether the list was cut short."""

    summary: Mapping[str, Any]
    waits: tuple[Wait, ...]
    since: str
    more_waiting: bool = False


def start_of_day(now: datetime) -> datetime:
    """Midnight UTC of ``now``'s day: "today" for finished requests and cost."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def longest_waits(records: Iterable[Mapping[str, Any]], *, at: datetime, limit: int) -> tuple[Wait, ...]:
    """The ``limit`` requests that have waited longest, oldest first; the wait runs from
    ``receivedAt`` to ``at`` (the summary's time, so the server's clock, not this machine's)."""
    waits = []
    for record in records:
        received = parse_time(record.get("receivedAt"))
        if received is None:
            continue
        place = record.get("queue") or {}
        waits.append(
            Wait(
                id=str(record.get("id")),
                team=record.get("team"),
                reason=str(record.get("state")),
                seconds=max(0.0, (at - received).total_seconds()),
                position=place.get("position"),
                estimated_start=place.get("estimatedStartAt"),
            )
        )
    waits.sort(key=lambda w: (-w.seconds, w.id))
    return tuple(waits[:limit])


def fetch(client: ApiClient, *, now: datetime, waits: int) -> Frame:
    """One frame from the API. Raises ApiError (the API refused) or OSError (unreachable)."""
    since = iso(start_of_day(now))
    summary = client.summary({"since": since})
    at = parse_time(summary.get("at")) or now
    records: list[Mapping[str, Any]] = []
    more = False
    if waits > 0:
        for state in WAITING_STATES:
            query = {"state": state, "limit": str(PAGE)}
            for _ in range(MAX_PAGES):
                page = client.list(query)
                records += page.get("items") or []
                token = page.get("nextPageToken")
                if not token:
                    break
                query["pageToken"] = token
            else:
                more = True
    return Frame(summary=summary, waits=longest_waits(records, at=at, limit=waits), since=since, more_waiting=more)


# --- formatting (pure) ----------------------------------------------------------------------


def duration(seconds: float) -> str:
    """``45s``, ``3m20s``, ``2h05m``, ``3d04h``: a wait at a glance."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def number(value: object) -> str:
    """A count or a core figure without noise: ``20``, ``12.5``, ``-`` for none."""
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, int | float):
        return str(int(value))
    return str(value)


def usage(in_use: object, budget: object) -> str:
    """``40 / 100 (40%)``; without a budget just the figure in use."""
    if isinstance(budget, int | float) and budget > 0 and isinstance(in_use, int | float):
        return f"{number(in_use)} / {number(budget)} ({in_use / budget:.0%})"
    return number(in_use)


def team_share(resource: Mapping[str, Any] | None) -> str:
    """A team's use against its share, as ``cli summary`` writes it: ``12/50+20`` (in use, share,
    then what it may borrow; ``+∞`` without a borrowing limit: up to the whole budget), or the
    figure in use alone when there is no teams file (docs/operations.md "Sharing between teams")."""
    resource = resource or {}
    return _of(resource.get("inUse"), resource.get("share"), resource.get("borrowLimit"), "g")


def money(cost: Mapping[str, Any] | None) -> str:
    cost = cost or {}
    amount = cost.get("amount")
    if not isinstance(amount, int | float):
        return "-"
    return f"{amount:,.2f} {cost.get('currency') or ''}".strip()


def waiting_by_reason(teams: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Waiting requests per reason over all teams the caller sees."""
    totals: dict[str, int] = {}
    for team in teams:
        for reason, count in (team.get("waitingByReason") or {}).items():
            totals[reason] = totals.get(reason, 0) + int(count)
    return dict(sorted(totals.items()))


def finished_text(finished: Mapping[str, Any] | None) -> str:
    """``10 ok, 1 failed`` — the outcomes with a count, in a fixed order."""
    finished = finished or {}
    labels = {"succeeded": "ok"}
    shown = [f"{finished[o]} {labels.get(o, o)}" for o in OUTCOMES if finished.get(o)]
    return ", ".join(shown) or "-"


def total_cost(teams: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The teams' costs added up (one currency: the API prices in one)."""
    amounts = [t.get("cost") or {} for t in teams]
    currency = next((c.get("currency") for c in amounts if c.get("currency")), "USD")
    return {"amount": sum(float(c.get("amount") or 0) for c in amounts), "currency": currency}


def render(frame: Frame, *, source: str, interval: float | None = None, error: str | None = None) -> RenderableType:
    """The frame as rich renderables: a header, the totals, capacity, teams and longest waits."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    summary = frame.summary
    teams: list[Mapping[str, Any]] = list(summary.get("teams") or [])
    capacity = summary.get("capacity") or {}
    header = Text.assemble(
        ("vnode-batch top", "bold"),
        f"  {source}  at {summary.get('at', '?')}",
        f"  (every {number(interval)} s, Ctrl-C to quit)" if interval else "",
    )
    reasons = waiting_by_reason(teams)
    waiting_total = capacity.get("waiting", sum(reasons.values()))
    totals = Text.assemble(
        ("running ", "dim"),
        (str(sum(int(t.get("running") or 0) for t in teams)), "bold green"),
        ("   waiting ", "dim"),
        (str(waiting_total), "bold yellow"),
        f" ({', '.join(f'{r} {n}' for r, n in reasons.items())})" if reasons else "",
        ("   cost today ", "dim"),
        (money(total_cost(teams)), "bold"),
    )

    gauges = Table.grid(padding=(0, 2))
    gauges.add_column("what")
    gauges.add_column("bar")
    gauges.add_column("figures")
    for label, key in (("cores", "cores"), ("container groups", "groups")):
        figures = capacity.get(key) or {}
        in_use, budget = figures.get("inUse") or 0, figures.get("budget")
        bar: RenderableType = (
            ProgressBar(total=float(budget), completed=min(float(in_use), float(budget)), width=30)
            if isinstance(budget, int | float) and budget > 0
            else Text("")
        )
        gauges.add_row(label, bar, usage(in_use, budget))

    table = Table(
        title="teams",
        title_justify="left",
        caption="cores, groups: in use/share+may borrow (+∞: up to the budget); finished and cost: today (UTC)",
        caption_justify="left",
    )
    table.add_column("team")
    for column in ("running", "waiting", "cores", "groups"):
        table.add_column(column, justify="right")
    table.add_column("finished")
    table.add_column("cost", justify="right")
    for team in sorted(teams, key=lambda t: str(t.get("team") or "")):
        table.add_row(
            str(team.get("team") or "(no team)"),
            number(team.get("running")),
            number(team.get("waiting")),
            team_share(team.get("cores")),
            team_share(team.get("groups")),
            finished_text(team.get("finished")),
            money(team.get("cost")),
        )

    parts: list[RenderableType] = [header, totals, gauges, table]
    if frame.waits:
        waits = Table(title="longest waits", title_justify="left")
        for column in ("id", "team", "waiting for", "waited", "place", "estimated start"):
            waits.add_column(column)
        for wait in frame.waits:
            waits.add_row(
                wait.id,
                wait.team or "-",
                wait.reason.removeprefix("waiting-for-"),
                duration(wait.seconds),
                number(wait.position),
                wait.estimated_start or "-",
            )
        parts.append(waits)
        if frame.more_waiting:
            parts.append(Text(f"(more than {PAGE * MAX_PAGES} waiting per reason: only those were read)", "dim"))
    if error:
        parts.append(Text(f"last refresh failed: {error} (showing the frame before)", "bold red"))
    return Group(*parts)


# --- the command ----------------------------------------------------------------------------


def _as_json(frame: Frame) -> str:
    waits = [
        {
            "id": w.id,
            "team": w.team,
            "state": w.reason,
            "waitedSeconds": round(w.seconds, 1),
            "position": w.position,
            "estimatedStartAt": w.estimated_start,
        }
        for w in frame.waits
    ]
    return json.dumps({"summary": frame.summary, "since": frame.since, "longestWaits": waits}, indent=2)


def cmd_top(args: argparse.Namespace) -> int:
    """Ctrl-C ends it with 0 at any moment (also while the first frame is read)."""
    try:
        return _top(args, sys.stdout)
    except KeyboardInterrupt:
        return 0


def _top(args: argparse.Namespace, stream: TextIO) -> int:
    from rich.console import Console
    from rich.live import Live

    client = client_from(args)
    source = client.base_url
    try:
        frame = fetch(client, now=datetime.now(UTC), waits=args.waits)
    except ApiError as e:
        if e.status == 404 and not e.body.get("type"):
            # The host's own 404 (no route), not a problem document of the app: an older app.
            print(
                f"error: {source} serves no GET /api/summary: deploy a version of the app that has it", file=sys.stderr
            )
        return _problem(e, sys.stderr)
    except OSError as e:
        print(f"error: cannot reach {source}: {e}", file=sys.stderr)
        return 1
    if args.once or args.json:
        if args.json:
            print(_as_json(frame), file=stream)
        else:
            Console(file=stream).print(render(frame, source=source))
        return 0
    console = Console(file=stream)
    with Live(render(frame, source=source, interval=args.interval), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(args.interval)
            error = None
            try:
                frame = fetch(client, now=datetime.now(UTC), waits=args.waits)
            except ApiError as e:
                error = f"HTTP {e.status} {e.body.get('title', '')}"
            except OSError as e:
                error = str(e)
            live.update(render(frame, source=source, interval=args.interval, error=error), refresh=True)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def register(sub: Any) -> None:
    """Add ``top`` to the CLI's subcommands."""
    p = sub.add_parser("top", help="live view: running, waiting by reason, capacity, teams, cost today (HTTP API)")
    p.add_argument("--interval", type=_positive, default=5.0, help="seconds between refreshes (default 5)")
    p.add_argument("--once", action="store_true", help="print one frame and exit (for scripts and tests)")
    p.add_argument("--waits", type=int, default=5, help="how many of the longest waits to show (default 5; 0: none)")
    add_api_options(p)
    p.set_defaults(func=cmd_top)
