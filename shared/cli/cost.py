"""``python -m shared.cli cost``: what the Jobs cost, from the request ledger.

Totals by day (default) or by one label (``--by team``), over requests received since
``--since`` (default 30d): a table with a bar per row in a terminal, or ``--csv`` / ``--json``.
Reads the ledger's Table storage directly (the CLI's storage identity needs Storage Table Data
Reader there). Amounts are in the currency of the prices each Job was costed with
(``VNB_PRICE_*`` at the time): rows never add different currencies.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TextIO

from shared.config.settings import Settings
from shared.cost.report import Costed, bar, costed, parse_since, to_csv, totals

PAGE = 500
EXIT_INVALID = 2


def register(sub: Any, settings_of: Callable[[argparse.Namespace], Settings]) -> None:
    p = sub.add_parser(
        "cost", help="what the Jobs cost (ACI vCPU/GB-seconds × prices), by day or label, from the ledger"
    )
    p.add_argument("--by", default="day", help="`day` (default) or a label name, e.g. `team`")
    p.add_argument("--since", default="30d", help="requests received since: 30d, 12h, 90m or a date (default 30d)")
    p.add_argument("--csv", action="store_true", help="CSV rows instead of the table")
    p.add_argument("--json", action="store_true", help="JSON rows instead of the table")
    p.set_defaults(func=lambda args: run(args, settings_of(args), sys.stdout, sys.stderr))


def records(settings: Settings, since: datetime) -> Iterator[Costed]:
    from shared.ledger.records import Query
    from shared.ledger.store import ledger_for

    ledger = ledger_for(settings)
    token: str | None = None
    while True:
        page, token = ledger.list(Query(since=since), limit=PAGE, page_token=token)
        for record in page:
            item = costed(record)
            if item is not None:
                yield item
        if not token:
            return


def run(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, *, now: datetime | None = None) -> int:
    try:
        since = parse_since(args.since, now or datetime.now(UTC))
    except ValueError as e:
        print(str(e), file=err)
        return EXIT_INVALID
    rows = totals(records(settings, since), by=args.by)
    if args.json:
        out.write(
            json.dumps({"by": args.by, "since": since.isoformat(), "rows": [r.as_dict() for r in rows]}, indent=2)
        )
        out.write("\n")
        return 0
    if args.csv:
        out.write(to_csv(rows, by=args.by))
        return 0
    render(rows, by=args.by, since=since, out=out)
    return 0


def render(rows: list[Any], *, by: str, since: datetime, out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, highlight=False, width=None if out.isatty() else 120)
    if not rows:
        console.print(f"no costed Jobs received since {since:%Y-%m-%d %H:%M} UTC")
        return
    table = Table(title=f"cost by {by}, requests received since {since:%Y-%m-%d %H:%M} UTC", title_justify="left")
    table.add_column(by)
    table.add_column("jobs", justify="right")
    table.add_column("vCPU-s", justify="right")
    table.add_column("GB-s", justify="right")
    table.add_column("amount", justify="right")
    table.add_column("of it, failed attempts", justify="right")
    table.add_column("")
    largest = max((r.amount for r in rows), default=Decimal(0))
    sums: dict[str, list[Decimal]] = {}
    for r in rows:
        table.add_row(
            r.group,
            str(r.jobs),
            f"{r.vcpu_seconds:,.1f}",
            f"{r.gb_seconds:,.1f}",
            f"{r.amount:,.6f} {r.currency}",
            f"{r.failed_amount:,.6f}",
            bar(r.amount, largest),
        )
        total = sums.setdefault(r.currency, [Decimal(0), Decimal(0)])
        total[0] += r.amount
        total[1] += r.jobs
    for currency, (amount, jobs) in sorted(sums.items()):
        table.add_row("[bold]total[/bold]", f"{jobs:.0f}", "", "", f"[bold]{amount:,.6f} {currency}[/bold]", "", "")
    console.print(table)
