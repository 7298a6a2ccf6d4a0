"""The one writer of terminal outcomes: every path that ends a request claims the end here first.

A request ends once. Whoever ends it — dispatch (rejected, dead-lettered after waiting), the
deadletter function (poisoned), the reconciler (succeeded, failed), the API (cancelled) — first
*claims* the outcome with :func:`finish`: one ETag-conditional write that moves the record to its
terminal state and records the id of the event it is about to send (``outcome.eventId``). Only a
claim that says so sends the event:

* :attr:`Verdict.WON`: this call ended the request: send.
* :attr:`Verdict.REPEAT`: the record already holds this very event id (the claimant's own retry
  after a crash between the claim and the send: the message redelivered, the Job still
  unreported on the next pass, the DELETE repeated): send the same event again. Its ``id`` is the
  same, and consumers de-duplicate on it; so a crash is repaired, never turned into a second outcome.
* :attr:`Verdict.LOST`: the request already has another outcome (a cancel that won against a
  report, a report that won against a cancel, a duplicate message): send nothing.
* :attr:`Verdict.FOREIGN`: the key belongs to another request (a message reusing its id): the
  record is not touched; the caller's event is about its message only.
* :attr:`Verdict.UNRECORDED`: Table storage refused the entity (400, permanent): the event still
  goes out (an answer matters more than the record) and the refusal is logged.

The claim is written before the send, so no path ever sends an outcome the ledger does not hold.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared.base.errors import FieldError, PermanentError, TransientError, VnbError, bounded
from shared.ledger.records import Record, State, advance, summary
from shared.ledger.store import CAS_ATTEMPTS, Ledger
from shared.telemetry import names, signals

log = logging.getLogger("vnode_batch.ledger")


class Verdict(enum.StrEnum):
    WON = "won"
    REPEAT = "repeat"
    LOST = "lost"
    FOREIGN = "foreign"
    UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class Claim:
    verdict: Verdict
    record: Record | None = None

    @property
    def send(self) -> bool:
        """Send the event? (Everything but a lost race.)"""
        return self.verdict is not Verdict.LOST

    @property
    def owned(self) -> bool:
        """Did the ledger record (now or before) this very outcome for the key?"""
        return self.verdict in (Verdict.WON, Verdict.REPEAT)


@dataclass(frozen=True)
class Ending:
    """The terminal outcome a caller claims."""

    state: State
    event_id: str
    event_type: str
    claimed_by: str
    """Who claims: ``message:<queue message id>``, ``job:<uid>``, ``api``, ``poison``."""
    reason: str | None = None
    errors: tuple[FieldError, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)
    """Outcome fields the ledger keeps (``shared.ledger.records.summary`` of them)."""
    job_name: str | None = None
    pending_event: str | None = None
    """The event text, kept until it is known sent: only for events that hold no request content
    (a cancel's), so any later actor can send it if the claimant crashed."""

    def outcome(self) -> dict[str, Any]:
        return {**self.data, "eventId": self.event_id, "eventType": self.event_type, "claimedBy": self.claimed_by}

    def stamp(self, record: Record) -> Record:
        """``record`` carrying this ending's outcome, errors and pending event."""
        errors = tuple(e.as_dict() for e in bounded(self.errors)) if self.errors else record.errors
        return replace(record, outcome=summary(self.outcome()), errors=errors, pending_event=self.pending_event)


def anyone(record: Record) -> bool:
    return True


def finish(
    ledger: Ledger,
    key: str,
    ending: Ending,
    now: datetime,
    *,
    create: Callable[[], Record],
    owns: Callable[[Record], bool] = anyone,
    known: Record | None = None,
) -> Claim:
    """Claim ``ending`` for ``key`` (see the module docstring for the verdicts).

    ``create``: the record to insert, in ``ending.state``, when the key is unknown (a request
    ended before it was recorded, or a Job older than the ledger). ``owns``: may this caller end
    the request held in the record (same content, or its own message)? ``known``: the record as
    the caller just read it (with its ETag), to save one read; a stale one costs a 412 and a read.
    """
    try:
        claim = _finish(ledger, key, ending, now, create=create, owns=owns, known=known)
    except PermanentError as e:
        log.error(
            "ledger: key %r: the table refused the %s record (%s); its event goes out unrecorded", key, ending.state, e
        )
        _count(ending, None)
        return Claim(Verdict.UNRECORDED)
    if claim.verdict is Verdict.WON:  # a request ends once, so it is counted once: here
        _count(ending, claim.record)
    return claim


def _count(ending: Ending, record: Record | None) -> None:
    """``vnb.requests.finished``: ``vnb.outcome`` is the state without its hyphen (``deadlettered``)."""
    signals.add(
        names.FINISHED,
        1,
        {
            names.OUTCOME: ending.state.value.replace("-", ""),
            names.REASON: ending.reason or "",
            names.TEAM: (record.team if record is not None else None) or "",
        },
    )


def _finish(
    ledger: Ledger,
    key: str,
    ending: Ending,
    now: datetime,
    *,
    create: Callable[[], Record],
    owns: Callable[[Record], bool],
    known: Record | None,
) -> Claim:
    for _ in range(CAS_ATTEMPTS):
        current = known if known is not None and known.etag is not None and known.key == key else ledger.get(key)
        known = None
        if current is None:
            first = create()
            assert first.state == ending.state
            assert first.key == key
            record, inserted = ledger.create(ending.stamp(first))
            if inserted:
                log.info("ledger: %s recorded as %s (event %s)", key, ending.state, ending.event_id)
                return Claim(Verdict.WON, record)
            current = record
        if current.terminal and current.event_id == ending.event_id:
            return Claim(Verdict.REPEAT, current)
        if not owns(current):
            return Claim(Verdict.FOREIGN, current)
        if current.terminal:
            return Claim(Verdict.LOST, current)
        nxt = advance(current, ending.state, now, job_name=ending.job_name, reason=ending.reason)
        if nxt is None:  # e.g. rejected after a Job exists: only the Job's outcome ends it now
            return Claim(Verdict.LOST, current)
        stored = ledger.swap(current, ending.stamp(nxt))
        if stored is None:
            continue  # 412: someone wrote first; read again and decide again
        log.info("ledger: %s %s → %s (event %s)", key, current.state, ending.state, ending.event_id)
        return Claim(Verdict.WON, stored)
    raise TransientError(f"ledger: key {key!r} kept changing while ending it as {ending.state}")


def unsent(record: Record | None) -> str | None:
    """The claimed event of ``record`` not yet known sent, if it was kept (a cancel's)."""
    if record is None or not record.terminal or not record.pending_event:
        return None
    return None if (record.outcome or {}).get("eventSent") else record.pending_event


def mark_sent(ledger: Ledger, record: Record) -> Record:
    """Note that ``record``'s event was sent (drop the kept text). Best effort: a failure only
    means a later actor sends the same event (same id) once more."""
    current: Record | None = record
    try:
        for _ in range(CAS_ATTEMPTS):
            if current is None or current.etag is None:
                current = ledger.get(record.key)
            if current is None or current.event_id != record.event_id or not unsent(current):
                return current or record
            nxt = replace(current, outcome={**(current.outcome or {}), "eventSent": True}, pending_event=None)
            stored = ledger.swap(current, nxt)
            if stored is not None:
                return stored
            current = None
    except VnbError as e:
        log.warning(
            "ledger: key %r: noting its event as sent failed (it may be sent again, same id): %s", record.key, e
        )
    return record


FLUSH_AFTER_SECONDS = 60
"""A kept event is sent by :func:`flush` once it is this old: its claimant (an API call) has
had time to send it itself."""


def flush(ledger: Ledger, send_event: Callable[[str], object], now: datetime) -> int:
    """Send the kept events whose claimant never said they were sent (a DELETE cut short after its
    claim, and not repeated), then note them sent; how many. The reconcile timer calls it, so no
    claimed outcome stays unsent even when no message or Job of the request is left to meet it.
    A send failure raises (the next run retries); the same event may go out twice, same id."""
    sent = 0
    for record in ledger.pending(now - timedelta(seconds=FLUSH_AFTER_SECONDS)):
        text = unsent(record)
        if text is None:
            continue
        send_event(text)
        mark_sent(ledger, record)
        sent += 1
    return sent
