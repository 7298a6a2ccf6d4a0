"""Give a request back to the queue when ACI refused its Job's pods for capacity (issue 11).

Called by the reconciler (``shared.flows.reconcile``) for a Job that
``shared.capacity.model.capacity_retry`` says was refused by ACI for quota, capacity or create
throttling and nothing else failed. In order:

1. condemn the Job (annotation ``vnode-batch.io/capacity-requeued``, compare-and-swap), so a
   message of the next attempt that meets it waits until it is gone (``shared.flows.dispatch``);
2. ``before_requeue`` (the reconciler moves the request ledger's key back to
   ``waiting-for-capacity``: the next attempt's message must find it waiting, not active);
   then send the request carried on the Job back to the requests queue, as a deferral with the
   next capacity attempt and its original key, message id and first-seen time;
3. delete the Job (Background), then mark it reported (its finalizer goes, so it goes).

No event is sent: the request is not finished. A failure after 1 and before 3 leaves the Job
condemned, unreported and not being deleted: the next pass sends the request again (a duplicate
message of the same attempt; dispatch completes it as a duplicate, or takes back the Job it
creates if the request finished meanwhile). A failure in 3 (the delete done, its answer lost)
leaves it being deleted: the next pass only marks it, the request went back already. Out of
attempts (VNB_CAPACITY_MAX_ATTEMPTS), the result is the ``CapacityExhausted`` verdict instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, Protocol

from shared.adapters.kube import Conflict
from shared.base.conventions import ANN_ENQUEUED_AT, ANN_KEY, ANN_MESSAGE_ID, ANN_TRACEPARENT
from shared.base.times import parse_time
from shared.capacity import model as capacity
from shared.config.settings import Settings
from shared.intake import trace
from shared.intake.deferral import wrap
from shared.job.read import is_deleting, job_name_of
from shared.outcomes.outcome import CAPACITY_EXHAUSTED
from shared.outcomes.provider_failure import classify
from shared.outcomes.verdicts import MAX_MESSAGE_CHARS, Verdict
from shared.telemetry import names, signals

log = logging.getLogger("vnode_batch.reconcile")

REQUEUED: Final = "requeued"
"""The request is back on the queue and the Job is gone."""
RUNNING: Final = "running"
"""The Job changed meanwhile (409): judged again next pass."""


class _Jobs(Protocol):
    def annotate_job(self, name: str, *, annotations: dict[str, str], resource_version: str) -> dict[str, Any]: ...

    def delete_job(self, name: str, *, propagation: str = "Background") -> bool: ...


def give_back(
    job: dict[str, Any],
    refusal: str,
    moment: datetime,
    *,
    settings: Settings,
    jobs: _Jobs,
    requeue: Callable[[str, int], object],
    on_refusal: Callable[[str, datetime | None], object] | None,
    mark: Callable[[dict[str, Any], datetime], None],
    before_requeue: Callable[[str, int, str], None] | None = None,
) -> Verdict | str:
    """``REQUEUED``, ``RUNNING``, or the ``CapacityExhausted`` verdict (see the module docstring).

    ``before_requeue(key, attempt, reason)``: called after the Job is condemned, before the send.
    Raises what the Kubernetes and queue calls raise (transient: the next pass retries)."""
    meta = job.get("metadata") or {}
    name = job_name_of(job)
    if capacity.ANN_REQUEUED in (meta.get("annotations") or {}) and is_deleting(job):
        # Condemned and being deleted: this give-back's delete (step 3) ran, and it runs only
        # after the send, so an earlier pass sent the request back already and failed after it
        # (the delete's answer lost, or the mark). Sending again would put a second message of
        # this attempt on the queue; a message that comes after its request finished can
        # create a third Job (issue k1). Only the mark is left. (Another deleter in between —
        # a cancel is never given back, an operator's kubectl delete of a condemned Job right
        # between its condemnation and its send — is not told apart.)
        mark(job, moment)
        return REQUEUED
    if on_refusal is not None:
        on_refusal(refusal, parse_time(meta.get("creationTimestamp")))
    signals.add(names.ACI_REFUSALS, 1, {names.REASON: classify(refusal).code or "unknown"})
    attempt = capacity.attempt_of(job) + 1
    request = capacity.request_of(job)
    limit = settings.capacity_max_attempts
    if request is None or attempt >= limit:
        why = "the Job carries no request to retry" if request is None else f"{attempt} of {limit} attempts"
        return Verdict(
            reason=CAPACITY_EXHAUSTED,
            message=f"ACI refused the Job's pods for quota, capacity or throttling ({why}, "
            f"VNB_CAPACITY_MAX_ATTEMPTS): {capacity.brief(refusal)}"[:MAX_MESSAGE_CHARS],
            at=moment,
        )
    ann = meta.get("annotations") or {}
    first_seen = parse_time(ann.get(ANN_ENQUEUED_AT)) or parse_time(meta.get("creationTimestamp"))
    reason = f"ACI refused the pods for capacity (attempt {attempt} of {limit}): {capacity.brief(refusal)}"
    key = str(ann.get(ANN_KEY) or name)
    text = wrap(
        request,
        key=key,
        message_id=str(ann.get(ANN_MESSAGE_ID) or ""),
        first_seen=first_seen or moment,
        count=attempt,
        reason=reason,
        capacity_attempts=attempt,
        trace=trace.of(ann.get(ANN_TRACEPARENT)),
    )
    if capacity.ANN_REQUEUED not in ann:
        try:
            job = jobs.annotate_job(
                name,
                annotations={capacity.ANN_REQUEUED: str(attempt)},
                resource_version=str(meta.get("resourceVersion")),
            )
        except Conflict:
            return RUNNING
    if before_requeue is not None:
        before_requeue(key, attempt, reason)
    requeue(text, settings.capacity_defer_seconds)
    signals.add(names.REQUEUES)
    log.warning(
        "Job %s: ACI refused its pods for capacity (attempt %d of %d): request %s back on the queue: %s",
        name,
        attempt,
        limit,
        ann.get(ANN_KEY),
        capacity.brief(refusal),
    )
    # Delete first: the finalizer keeps the Job (unreported) until ``mark`` removes it, so a
    # failure in between leaves it for the next pass, which requeues again (a duplicate
    # message, harmless) instead of reporting it Lost.
    jobs.delete_job(name, propagation="Background")
    mark(job, moment)
    return REQUEUED
