"""What the dispatcher, reconciler, deadletter and API record in the ledger, step by step.

Each function is one idempotent ledger step (``Ledger.move``/``create``); the services call
them at fixed points so that the ledger's order matches the side effects':

* dispatch: ``received`` before anything else → ``waiting-*`` after the re-enqueue →
  ``submitted`` after the Job exists (a cancel that won the race makes dispatch delete it);
* reconcile: ``running`` when a Job has started; the outcome claimed *before* the event is sent
  and the Job marked reported, so a crash in between finds its own claim and re-sends the same
  event — and a Job deleted at once is never forgotten; ``requeued`` (back to
  ``waiting-for-capacity``) when ACI refused a Job's pods for capacity, before its request goes
  back on the queue;
* deadletter: ``dead-lettered`` for a poisoned message whose key it can read.

Every terminal step (``rejected``, ``deadlettered``, ``finished``; the API's cancel) is a claim
through ``shared.ledger.outcome_writer.finish``, written *before* its event is sent: the caller
sends only when the claim says so, so a request has exactly one terminal event id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.base.conventions import ANN_CORRELATION_ID, ANN_KEY, ANN_MESSAGE_ID, ANN_REQUEST_HASH
from shared.base.errors import FieldError
from shared.base.handles import MessageHandle
from shared.intake.request import BatchRequest
from shared.ledger.outcome_writer import Claim, Ending, Verdict, anyone, finish
from shared.ledger.records import WAKE, Record, State, new_record, queue_changed
from shared.ledger.store import CAS_ATTEMPTS, Ledger
from shared.outcomes import events
from shared.telemetry import names, signals


def received(
    ledger: Ledger,
    *,
    key: str,
    request: BatchRequest,
    message_id: str | None,
    now: datetime,
    source: str,
    traceparent: str | None = None,
) -> Record:
    """Record a valid request (insert-if-absent); return what the ledger holds for the key.

    ``traceparent``: the request's trace (kept only by the first record of the key: a later
    delivery joins the trace the ledger names). Counts ``vnb.requests.received`` once per key."""
    first = replace(
        new_record(
            key,
            State.RECEIVED,
            now,
            content_hash=request.content_hash(),
            image=request.image,
            labels=request.labels,
            correlation_id=request.correlationId,
            message_id=message_id,
            source=source,
            team=request.team,
        ),
        trace_parent=traceparent,
    )
    record, inserted = ledger.create(first)
    if inserted:
        signals.add(names.RECEIVED, 1, {names.SOURCE: source, names.TEAM: request.team or ""})
    return record


def waiting(
    ledger: Ledger,
    *,
    key: str,
    reason: str,
    attempts: int,
    now: datetime,
    capacity: bool = False,
    queue: Mapping[str, Any] | None = None,
    wake: MessageHandle | None = None,
) -> None:
    """``queue``: its position and estimated start among the requests this dispatcher instance
    knows, written when it changed enough to matter (``shared.ledger.records.queue_changed``) and
    only until the reconciler has placed it among all waiting requests (``rankedAt``:
    ``shared.flows.ranking``), whose place is then the one kept. ``wake``: the handle of the
    message now carrying the request, kept as ``queue.wake`` so that the reconciler can wake it
    when capacity frees (``shared.flows.wake``); one conditional write per deferral, together
    with the place when both changed (read again and retried when the record changed meanwhile,
    so that the handle is never lost to the reconciler's ranking write)."""
    target = State.WAITING_FOR_CAPACITY if capacity else State.WAITING_FOR_CLUSTER
    record = ledger.move(key, target, now, reason=reason, attempts=attempts)
    handle = wake.as_dict() if wake is not None and capacity else None
    for _ in range(CAS_ATTEMPTS):
        if record is None or record.state != target:
            return
        kept = dict(record.queue or {})
        after = dict(kept)
        if queue and "rankedAt" not in kept and queue_changed(record.queue, queue, now=now):
            after = {**dict(queue), **({WAKE: kept[WAKE]} if WAKE in kept else {})}
        if handle is not None:
            after[WAKE] = handle
        if after == kept or ledger.note_queue(record, after) or handle is None:
            return
        # The record changed since it was read (the reconciler's ranking writes places with its
        # ETag): a lost place is rewritten by the next pass, but a lost handle leaves the spent one
        # in the ledger and the request asleep for VNB_CAPACITY_SLEEP_SECONDS, nothing able to
        # wake it. Read again and keep the new handle.
        record = ledger.get(key)


def requeued(ledger: Ledger, *, key: str, reason: str, attempt: int, now: datetime) -> None:
    """A capacity give-back (the reconciler put the request back on the queue): the key goes
    back to ``waiting-for-capacity`` from ``submitted``/``running``, never to ``failed``.
    Before the requeue, so the next attempt's message finds it waiting."""
    ledger.move(key, State.WAITING_FOR_CAPACITY, now, reason=reason, attempts=attempt, requeued=True)


def submitted(ledger: Ledger, *, key: str, job_name: str, now: datetime, known: Record | None = None) -> Record | None:
    return ledger.move(key, State.SUBMITTED, now, job_name=job_name, known=known)


def rejected(
    ledger: Ledger,
    *,
    key: str,
    errors: Sequence[FieldError],
    reason: str,
    correlation_id: str | None,
    message_id: str | None,
    now: datetime,
    event_id: str,
    claimed_by: str,
    owns: Callable[[Record], bool],
    request: BatchRequest | None = None,
) -> Claim:
    """Claim ``rejected`` (``shared.ledger.outcome_writer``): a new key is recorded as rejected, a
    waiting record this message owns (``owns``) moves to rejected, anything else is left alone."""
    ending = Ending(
        State.REJECTED,
        event_id=event_id,
        event_type=events.REQUEST_REJECTED,
        claimed_by=claimed_by,
        reason=reason,
        errors=tuple(errors),
        data={"reason": reason},
    )
    return _claim(
        ledger, key, ending, now, owns=owns, request=request, correlation_id=correlation_id, message_id=message_id
    )


def deadlettered(
    ledger: Ledger,
    *,
    key: str,
    reason: str,
    detail: str,
    correlation_id: str | None,
    message_id: str | None,
    now: datetime,
    event_id: str,
    claimed_by: str,
    owns: Callable[[Record], bool] = anyone,
    request: BatchRequest | None = None,
) -> Claim:
    """Claim ``dead-lettered`` (reason code in the outcome, ``detail`` as the record's reason)."""
    ending = Ending(
        State.DEADLETTERED,
        event_id=event_id,
        event_type=events.REQUEST_DEADLETTERED,
        claimed_by=claimed_by,
        reason=detail,
        data={"reason": reason},
    )
    return _claim(
        ledger, key, ending, now, owns=owns, request=request, correlation_id=correlation_id, message_id=message_id
    )


def _claim(
    ledger: Ledger,
    key: str,
    ending: Ending,
    now: datetime,
    *,
    owns: Callable[[Record], bool],
    request: BatchRequest | None,
    correlation_id: str | None,
    message_id: str | None,
) -> Claim:
    """Claim ``ending`` for a message's request (the finish shape ``rejected`` and
    ``deadlettered`` share): an unknown key is recorded in ``ending.state`` with what the message
    says, its request's content when it is a valid one."""

    def create() -> Record:
        content: dict[str, Any] = {"correlation_id": correlation_id}
        if request is not None:
            content = {
                "content_hash": request.content_hash(),
                "image": request.image,
                "labels": request.labels,
                "correlation_id": request.correlationId,
            }
        return new_record(key, ending.state, now, reason=ending.reason, message_id=message_id, **content)

    return finish(ledger, key, ending, now, owns=owns, create=create)


def same_request(request: BatchRequest) -> Callable[[Record], bool]:
    """``owns`` for a valid request: the record holds this request (same content), or none
    recorded any (a record made from a Job or a rejection)."""
    digest = request.content_hash()
    return lambda record: record.content_hash is None or record.content_hash == digest


def same_message(*message_ids: str | None) -> Callable[[Record], bool]:
    """``owns`` for a message that is not a valid request: only a record its own message made."""
    ids = {m for m in message_ids if m}
    return lambda record: record.message_id is not None and record.message_id in ids


def _from_job(job: Mapping[str, Any], key: str, state: State, now: datetime, **extra: Any) -> Record:
    """A record built from a Job's annotations (a Job created before the ledger existed)."""
    meta = job.get("metadata") or {}
    ann = meta.get("annotations") or {}
    return new_record(
        key,
        state,
        now,
        job_name=meta.get("name"),
        content_hash=ann.get(ANN_REQUEST_HASH),
        correlation_id=ann.get(ANN_CORRELATION_ID),
        message_id=ann.get(ANN_MESSAGE_ID),
        **extra,
    )


def job_key(job: Mapping[str, Any]) -> str | None:
    value = ((job.get("metadata") or {}).get("annotations") or {}).get(ANN_KEY)
    return str(value) if value else None


class RunningMemo:
    """Keys this process already recorded as running, with the Job's uid: a running Job is seen
    on every reconcile pass, and re-reading the ledger each time would cost one call per running
    Job per pass. (With the uid, the next attempt's Job of a capacity give-back is recorded.)"""

    def __init__(self, size: int = 10_000) -> None:
        self._keys: dict[str, None] = {}
        self._size = size
        self._lock = threading.Lock()

    def seen(self, key: str) -> bool:
        with self._lock:
            return key in self._keys

    def add(self, key: str) -> None:
        with self._lock:
            self._keys[key] = None
            while len(self._keys) > self._size:
                self._keys.pop(next(iter(self._keys)))


_memo = RunningMemo()


def running(ledger: Ledger, *, job: Mapping[str, Any], now: datetime, memo: RunningMemo = _memo) -> None:
    """Record ``running`` for a Job that has started (once per key per process)."""
    key = job_key(job)
    status = job.get("status") or {}
    meta = job.get("metadata") or {}
    seen = f"{key}|{meta.get('uid') or ''}"
    if key is None or not (status.get("active") or status.get("startTime")) or memo.seen(seen):
        return
    name = str(meta.get("name") or "")
    ledger.move(key, State.RUNNING, now, job_name=name, create=lambda: _from_job(job, key, State.RUNNING, now))
    memo.add(seen)


def record_of(ledger: Ledger, *, job: Mapping[str, Any]) -> Record | None:
    """The ledger record of a Job's request (None: no key, or not recorded)."""
    key = job_key(job)
    return None if key is None else ledger.get(key)


def finished(
    ledger: Ledger,
    *,
    job: Mapping[str, Any],
    succeeded: bool,
    data: Mapping[str, Any],
    event_id: str,
    now: datetime,
    known: Record | None = None,
) -> Claim:
    """Claim a Job's outcome before its event is sent (creating the record for a Job that
    predates the ledger). A Job without a request key has no record: always WON."""
    key = job_key(job)
    if key is None:
        return Claim(Verdict.WON)
    state = State.SUCCEEDED if succeeded else State.FAILED
    name = str((job.get("metadata") or {}).get("name") or "")
    uid = str((job.get("metadata") or {}).get("uid") or "")
    reason = str(data.get("reason") or "") or None
    ending = Ending(
        state,
        event_id=event_id,
        event_type=events.JOB_SUCCEEDED if succeeded else events.JOB_FAILED,
        claimed_by=f"job:{uid}",
        reason=reason,
        data=data,
        job_name=name,
    )
    return finish(ledger, key, ending, now, create=lambda: _from_job(job, key, state, now, reason=reason), known=known)
