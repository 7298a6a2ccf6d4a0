"""``python -m shared.cli plan`` and ``bootstrap``: the bootstrap engine (``shared.cluster.bootstrap``)
rendered with rich — the network findings, each step's decision, and a progress display."""

from __future__ import annotations

import time
from typing import Any, TextIO

from shared.base.conventions import VIRTUAL_NODE_NAME
from shared.cluster import network
from shared.cluster.bootstrap import Bootstrap, Evaluation
from shared.cluster.network import Finding, NetworkPlanInvalid
from shared.cluster.plan.steps import Decision, Do, Step
from shared.config.settings import Settings


def _console(out: TextIO) -> Any:
    from rich.console import Console

    # Not a terminal (a log, a pipe): wide enough that ids and scopes stay whole and copyable.
    width = None if out.isatty() else 200
    return Console(file=out, soft_wrap=True, highlight=False, width=width)


def _print_findings(findings: list[Finding], console: Any) -> None:
    for f in findings:
        style = "red" if f.severity is network.Severity.ERROR else "yellow"
        console.print(f"[{style}]{f.severity.upper()}[/{style}] {f}", markup=True)


def cli_plan(settings: Settings, out: TextIO, err: TextIO) -> int:
    """What-if: print each step, what exists and what would be created or changed, and why.

    Only GETs (plus the listClusterUserCredential POST, which reads) — nothing is written.
    Exit 2 on an invalid network plan (each error names its setting), 1 when a step is
    blocked, 0 otherwise.
    """
    console, errors = _console(out), _console(err)
    engine = Bootstrap(settings)
    try:
        _, warnings = engine.network_plan()
    except NetworkPlanInvalid as e:
        _print_findings(e.findings, errors)
        errors.print(f"invalid network plan: {sum(f.severity is network.Severity.ERROR for f in e.findings)} error(s)")
        return 2
    _print_findings(warnings, errors)
    t = engine.targets
    console.print(
        f"plan for cluster {t.cluster_name} in {t.resource_group_id} (namespace {t.namespace}); nothing is changed"
    )
    evaluation = engine.evaluate(apply=False)
    _print_decisions(evaluation.decisions, console)
    return 1 if evaluation.hopeless else 0


def _print_decisions(decisions: list[Decision], console: Any) -> None:
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("step")
    table.add_column("now")
    table.add_column("why", overflow="fold")
    for d in decisions:
        table.add_row(str(d.step), _MARK[d.do], d.why)
    console.print(table)


def cli_bootstrap(settings: Settings, out: TextIO, err: TextIO, *, timeout: float, poll_seconds: float = 10.0) -> int:
    """Run the bootstrap to completion, polling (this is the one place that may wait).

    Exit 0 when the virtual node is Ready, 1 when a step is blocked or the timeout passes,
    2 on an invalid network plan.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console, errors = _console(out), _console(err)
    engine = Bootstrap(settings)
    try:
        _, warnings = engine.network_plan()
    except NetworkPlanInvalid as e:
        _print_findings(e.findings, errors)
        return 2
    _print_findings(warnings, errors)
    deadline = time.monotonic() + timeout
    steps = list(Step)
    evaluation: Evaluation | None = None
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=False
    ) as progress:
        task = progress.add_task("starting", total=len(steps))
        while True:
            evaluation = engine.evaluate(apply=True)
            done = sum(1 for d in evaluation.decisions if d.done)
            current = evaluation.blocking
            progress.update(task, completed=done, description=current.reason if current else "ready")
            if evaluation.ready or evaluation.hopeless or time.monotonic() >= deadline:
                break
            time.sleep(poll_seconds)
    _print_decisions(evaluation.decisions, console)
    if evaluation.ready:
        console.print(f"cluster {settings.cluster_name} is ready: node {VIRTUAL_NODE_NAME} Ready")
        return 0
    if evaluation.hopeless:
        errors.print(f"blocked: {evaluation.readiness().reason}")
        return 1
    errors.print(f"not ready after {timeout:g} s: {evaluation.readiness().reason} (run it again to continue)")
    return 1


_MARK = {
    Do.NOTHING: "ok",
    Do.REGISTER: "register",
    Do.CREATE: "create",
    Do.UPDATE: "update",
    Do.START: "start",
    Do.GIVE_UP: "give up",
    Do.WAIT: "wait",
    Do.BLOCKED: "BLOCKED",
    Do.PENDING: "later",
}
