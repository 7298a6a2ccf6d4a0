"""What the reconciler tells telemetry about a reported Job (issue 21): its run and report spans
in the request's trace, and the Job's run time, report delay and cost.

The trace is the one the Job carries (``ANN_TRACEPARENT``, written at dispatch), so the spans
are children of the request's receive span; the reconcile invocation that reports the Job is a
link (``shared.telemetry.signals``: parent for the request, link for the asynchronous hop). The
run span is drawn from the Job's own times (``status.startTime`` to its end), ended when written.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from shared.base.conventions import ANN_KEY, ANN_TRACEPARENT, LABEL_TEAM
from shared.job.read import annotations_of, job_name_of, metadata_of
from shared.outcomes.outcome import Outcome
from shared.telemetry import names, signals

log = logging.getLogger("vnode_batch.telemetry")


def reported(job: dict[str, Any], result: Outcome, cost: dict[str, Any], *, sent_at: datetime) -> None:
    """Record a Job whose outcome event was just sent (no-op with telemetry off). Never raises:
    the event is out, and a telemetry failure must not keep the Job unreported."""
    if not signals.enabled():
        return
    try:
        _reported(job, result, cost, sent_at)
    except Exception:
        log.exception("telemetry for Job %s failed; its outcome was reported", job_name_of(job))


def _reported(job: dict[str, Any], result: Outcome, cost: dict[str, Any], sent_at: datetime) -> None:
    ann = annotations_of(job)
    team = str((metadata_of(job).get("labels") or {}).get(LABEL_TEAM) or "")
    parent = ann.get(ANN_TRACEPARENT)
    common: signals.Attributes = {names.REQUEST_KEY: str(ann.get(ANN_KEY) or ""), names.JOB_NAME: job_name_of(job)}
    outcome = result.label
    if result.started_at is not None:
        with signals.span(
            names.SPAN_RUN,
            parent=parent,
            start=result.started_at,
            end=result.finished_at,
            attributes={**common, names.OUTCOME: outcome, "vnb.job.reason": result.reason},
        ) as run:
            if not result.succeeded:
                run.error(result.reason)
        signals.record(
            names.JOB_DURATION,
            (result.finished_at - result.started_at).total_seconds(),
            {names.OUTCOME: outcome, names.TEAM: team},
        )
    with signals.span(  # from the Job's end to its event sent: the report delay, as a span
        names.SPAN_REPORT,
        parent=parent,
        start=result.finished_at,
        end=sent_at,
        attributes={**common, names.OUTCOME: outcome},
    ):
        pass
    signals.record(names.REPORT_DURATION, (sent_at - result.finished_at).total_seconds())
    amount = _amount(cost)
    if amount is not None:
        signals.add(names.COST, amount, {names.TEAM: team, "vnb.currency": str(cost.get("currency") or "")})


def _amount(cost: dict[str, Any]) -> float | None:
    try:
        return float(cost["amount"])
    except (KeyError, TypeError, ValueError):
        return None
