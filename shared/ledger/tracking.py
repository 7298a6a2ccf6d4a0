"""What the dispatcher, reconciler, deadletter and API record in the ledger, step by step.

Each function is one idempotent ledger step (``Ledger.move``/``create``); the services call
them at fixed points so that the ledger's order matches the side effects':

* dispatch: ``received`` before anything else → ``waiting-*`` after the re-enqueue →
  ``submitted`` after the Job exists (a cancel that won the race makes dispatch delete it);
* reconcile: ``running`` when a Job has started; the outcome *after* the event is sent and
  *before* the Job is marked reported, so a crash in between re-sends the same event and the
  ledger write is a no-op — and a Job deleted at once is never forgotten; ``requeued`` (back to
  ``waiting-for-capacity``) when ACI refused a Job's pods for capacity, before its request goes
  back on the queue;
* deadletter: ``dead-lettered`` for a poisoned message whose key it can read.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.base.conventions import ANN_CORRELATION_ID, ANN_KEY, ANN_MESSAGE_ID, ANN_REQUEST_HASH
from shared.base.errors import FieldError
from shared.intake.request import BatchRequest
from shared.ledger.records import Record, State, new_record, queue_changed
from shared.ledger.store import Ledger


def received(
    ledger: Ledger, *, key: str, request: BatchRequest, message_id: str | None, now: datetime, source: str
) -> Record:
    """Record a valid request (insert-if-absent); return what the ledger holds for the key."""
    record, _ = ledger.create(
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
        )
    )
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
) -> None:
    """``queue``: its position and estimated start, written when it changed enough to matter
    (``shared.ledger.records.queue_changed``)."""
    target = State.WAITING_FOR_CAPACITY if capacity else State.WAITING_FOR_CLUSTER
    record = ledger.move(key, target, now, reason=reason, attempts=attempts)
    if queue and record is not None and record.state == target and queue_changed(record.queue, queue, now=now):
        ledger.note_queue(record, queue)


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
) -> bool:
    """A rejected message with a readable key: recorded only if the key is new, so an invalid
    message reusing the id of a live request never overwrites it. Whether the key is this
    message's (False: another request holds it, and the rejection must not name it)."""
    record, inserted = ledger.create(
        new_record(
            key,
            State.REJECTED,
            now,
            reason=reason,
            errors=tuple(e.as_dict() for e in errors),
            correlation_id=correlation_id,
            message_id=message_id,
        )
    )
    return inserted or not claimed_by_another(record, message_id=message_id)


def claimed_by_another(record: Record | None, *, message_id: str | None, content_hash: str | None = None) -> bool:
    """Whether ``record``, what the ledger holds for a key, is another request's than this
    message's: not a redelivery of the same message, nor the same request sent again."""
    if record is None:
        return False
    if content_hash is not None and record.content_hash == content_hash:
        return False
    return record.message_id is None or record.message_id != message_id


def deadlettered(
    ledger: Ledger, *, key: str, reason: str, correlation_id: str | None, message_id: str | None, now: datetime
) -> None:
    ledger.move(
        key,
        State.DEADLETTERED,
        now,
        reason=reason,
        create=lambda: new_record(
            key, State.DEADLETTERED, now, reason=reason, correlation_id=correlation_id, message_id=message_id
        ),
    )


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
) -> None:
    """Record a reported Job's outcome (creating the record for a Job that predates the ledger)."""
    key = job_key(job)
    if key is None:
        return
    state = State.SUCCEEDED if succeeded else State.FAILED
    outcome = {**data, "eventId": event_id}
    name = str((job.get("metadata") or {}).get("name") or "")
    ledger.move(
        key,
        state,
        now,
        job_name=name,
        reason=str(data.get("reason") or "") or None,
        outcome=outcome,
        create=lambda: _from_job(job, key, state, now, outcome=outcome, reason=data.get("reason")),
        known=known,
    )
