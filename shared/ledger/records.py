"""The request ledger's values (pure: no I/O): states, allowed transitions, the entity shape.

One entity per request key in Azure Table storage says where a request is:

``received`` → ``waiting-for-cluster`` / ``waiting-for-capacity`` → ``submitted`` → ``running``
→ ``succeeded`` | ``failed``; or ``rejected``, ``dead-lettered``, ``cancelled``.

Transitions only move forward (a step may be skipped: a crash between creating the Job and
recording ``submitted`` is repaired by the reconciler recording ``succeeded``), terminal states
never change, and a transition to the state already held is a no-op — so a redelivered message,
a repeated reconcile pass or a racing instance records each transition exactly once.

What the entity holds: the key, state, one timestamp per state reached, the Job name, a
reason, attempts (deferrals), labels, correlation id, image, a content hash (to detect a
reused id after the Job is gone) and an outcome summary (reason, exit code, durations).
It NEVER holds the request's ``env``, its command/args, log tails or the workload's messages:
those may carry secrets, and the ledger is readable by every API caller.

Keys: PartitionKey = the request key (one request per partition: point reads, per-key ETag
concurrency, writes for different requests never contend), RowKey = ``request``. Table
storage has no secondary index, so listing by state/label/since is a server-side filter over
the table, paged with continuation tokens; the retention setting bounds what it scans.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from shared.base.errors import FieldError, bounded
from shared.base.text import clean
from shared.base.times import parse_time
from shared.telemetry.tracecontext import parse

ROW_KEY: Final = "request"
MAX_REASON_CHARS: Final = 1024


class State(enum.StrEnum):
    RECEIVED = "received"
    WAITING_FOR_CLUSTER = "waiting-for-cluster"
    WAITING_FOR_CAPACITY = "waiting-for-capacity"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    DEADLETTERED = "dead-lettered"
    CANCELLED = "cancelled"


WAITING: Final = frozenset({State.RECEIVED, State.WAITING_FOR_CLUSTER, State.WAITING_FOR_CAPACITY})
ACTIVE: Final = frozenset({State.SUBMITTED, State.RUNNING})
TERMINAL: Final = frozenset({State.SUCCEEDED, State.FAILED, State.REJECTED, State.DEADLETTERED, State.CANCELLED})

_RANK: Final = {
    State.RECEIVED: 0,
    State.WAITING_FOR_CLUSTER: 1,
    State.WAITING_FOR_CAPACITY: 1,
    State.SUBMITTED: 2,
    State.RUNNING: 3,
}


def allowed(current: State, target: State, *, requeued: bool = False) -> bool:
    """May a request in ``current`` move to ``target``? (Same state: no, it is a no-op.)

    Terminal states are final. ``rejected`` and ``dead-lettered`` end a request that has no Job
    yet (a Job, once created, is the reconciler's to report), ``cancelled`` ends any live
    request, ``succeeded``/``failed`` may follow any live state (the reconciler reports a Job
    whose ``submitted`` was never recorded), and the other states move forward only; the two
    waiting states may alternate.

    ``requeued``: the reconciler gave the request back to the queue because ACI refused its
    Job's pods for capacity (``shared.capacity.give_back``): the one move backwards,
    ``submitted``/``running`` → ``waiting-for-capacity``. The request is not finished, and its
    next attempt's message must find it waiting, not active (dispatch takes an active key's
    message for a duplicate).
    """
    if current in TERMINAL or current == target:
        return False
    if requeued:
        return target == State.WAITING_FOR_CAPACITY and (current in ACTIVE or current in WAITING)
    if target in (State.CANCELLED, State.SUCCEEDED, State.FAILED):
        return True
    if target in (State.REJECTED, State.DEADLETTERED):
        return current in WAITING
    return _RANK[target] > _RANK[current] or (current in WAITING and target in WAITING and target != State.RECEIVED)


def _camel(state: State) -> str:
    head, *rest = state.value.split("-")
    return head + "".join(part.title() for part in rest) + "At"


TIME_FIELDS: Final = {s: _camel(s) for s in State}
"""Entity property holding when each state was reached, e.g. ``waitingForClusterAt``."""


@dataclass(frozen=True)
class Record:
    """One request in the ledger (what GET /api/requests/{id} shows)."""

    key: str
    state: State
    times: dict[str, str] = field(default_factory=dict)
    """State value → RFC 3339 time it was first reached."""
    updated_at: str = ""
    received_at: str = ""
    job_name: str | None = None
    reason: str | None = None
    errors: tuple[dict[str, str], ...] = ()
    attempts: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    correlation_id: str | None = None
    image: str | None = None
    content_hash: str | None = None
    message_id: str | None = None
    source: str | None = None
    outcome: dict[str, Any] | None = None
    pending_event: str | None = None
    """A cancel's event text, kept from its claim until it is known sent (``shared.ledger.outcome_writer``);
    never shown by the API. Only cancel events are kept: they hold no request content."""
    etag: str | None = None
    team: str | None = None
    """The team it runs for (VNB_TEAMS_FILE); who may see and cancel it."""
    principal: str | None = None
    """Who submitted it through the API (``shared.teams.identity``: an Entra object id, ``app:<id>``
    or ``key:<digest prefix>``)."""
    queue: dict[str, Any] | None = None
    """While waiting for capacity: its position among the waiting requests and its estimated
    start (``shared.capacity.eta``); cleared when it leaves ``waiting-for-capacity``."""
    trace_parent: str | None = None
    """The W3C ``traceparent`` of the request's trace (issue 21); the API shows its trace id."""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def event_id(self) -> str | None:
        """The id of the one terminal event recorded for this request (None: none yet)."""
        value = (self.outcome or {}).get("eventId")
        return str(value) if value else None


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_record(
    key: str,
    state: State,
    now: datetime,
    *,
    content_hash: str | None = None,
    image: str | None = None,
    labels: Mapping[str, str] | None = None,
    correlation_id: str | None = None,
    message_id: str | None = None,
    source: str | None = None,
    job_name: str | None = None,
    reason: str | None = None,
    errors: tuple[dict[str, str], ...] = (),
    attempts: int = 0,
    outcome: Mapping[str, Any] | None = None,
    team: str | None = None,
    principal: str | None = None,
) -> Record:
    at = iso(now)
    return Record(
        key=key,
        state=state,
        times={state.value: at},
        updated_at=at,
        received_at=at,
        job_name=job_name,
        reason=_cut(reason),
        errors=tuple(
            e.as_dict() for e in bounded(FieldError(str(e.get("field")), str(e.get("message"))) for e in errors)
        ),
        attempts=attempts,
        labels=dict(labels or {}),
        correlation_id=correlation_id,
        image=image,
        content_hash=content_hash,
        message_id=message_id,
        source=source,
        outcome=summary(outcome) if outcome else None,
        team=team,
        principal=principal,
    )


def advance(
    record: Record,
    target: State,
    now: datetime,
    *,
    job_name: str | None = None,
    reason: str | None = None,
    attempts: int | None = None,
    outcome: Mapping[str, Any] | None = None,
    requeued: bool = False,
) -> Record | None:
    """The record after moving to ``target``, or None when the move is not allowed (a no-op).

    ``attempts`` is a value, not an increment (the deferral count the message carries), so
    applying the same step twice gives the same record.
    """
    if not allowed(record.state, target, requeued=requeued):
        return None
    at = iso(now)
    times = dict(record.times)
    times.setdefault(target.value, at)
    return replace(
        record,
        state=target,
        times=times,
        updated_at=at,
        job_name=job_name or record.job_name,
        reason=_cut(reason) if reason is not None else record.reason,
        attempts=max(record.attempts, attempts or 0),
        outcome=summary(outcome) if outcome else record.outcome,
        queue=record.queue if target == State.WAITING_FOR_CAPACITY else None,
    )


_OUTCOME_FIELDS: Final = (
    "outcome",
    "reason",
    "exitCode",
    "jobUid",
    "startedAt",
    "finishedAt",
    "durationSeconds",
    "queueToStartSeconds",
    "indexes",
    "attempts",
    "eventId",
    "eventType",
    "claimedBy",
    "eventSent",
    "ran",
    "cost",
    "outputs",  # what the Job wrote under its output prefix (count, bytes, first names)
)


def summary(data: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome fields the ledger keeps: no ``message``, no ``logTail`` (workload output may
    hold secrets). The cost is kept without its per-index list (``cli cost`` needs the totals;
    the event has the detail), so an array of 100 indexes stays a small entity."""
    kept = {k: data[k] for k in _OUTCOME_FIELDS if k in data and data[k] is not None}
    if isinstance(kept.get("cost"), Mapping):
        kept["cost"] = {**kept["cost"], "indexes": None}
    return kept


def _cut(text: str | None) -> str | None:
    if text is None:
        return None
    return clean(text, MAX_REASON_CHARS)


# --- Table storage entity -------------------------------------------------------------------

_SAFE_KEY = re.compile(r"[A-Za-z0-9._:@+-]{1,512}")


def partition_key(key: str) -> str:
    """PartitionKey of a request key. Request ids are already safe (``shared.intake.request`` allows
    letters, digits and ``._:@+-``); anything else (a foreign message id) is hashed, since
    Table storage forbids ``/ \\ # ?`` and control characters in keys."""
    if _SAFE_KEY.fullmatch(key):
        return key
    return "~" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def label_property(name: str) -> str:
    """Entity property that holds one label's value, for server-side ``label=k=v`` filters.

    Label names contain ``/`` and ``.``, which property names (C# identifiers) cannot, so the
    name is hashed; the readable labels are kept in ``labels`` (JSON).
    """
    return "L" + hashlib.sha256(name.encode()).hexdigest()[:24]


def to_entity(record: Record) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": partition_key(record.key),
        "RowKey": ROW_KEY,
        "key": record.key,
        "state": record.state.value,
        "updatedAt": record.updated_at,
        "receivedAt": record.received_at,
        "attempts": record.attempts,
        "labels": json.dumps(record.labels, separators=(",", ":"), sort_keys=True),
    }
    for state_value, at in record.times.items():
        entity[TIME_FIELDS[State(state_value)]] = at
    optional = {
        "jobName": record.job_name,
        "reason": record.reason,
        "correlationId": record.correlation_id,
        "image": record.image,
        "contentHash": record.content_hash,
        "messageId": record.message_id,
        "source": record.source,
        "team": record.team,
        "principal": record.principal,
        "errors": json.dumps(list(record.errors), separators=(",", ":")) if record.errors else None,
        "outcome": json.dumps(record.outcome, separators=(",", ":"), sort_keys=True) if record.outcome else None,
        "queue": json.dumps(record.queue, separators=(",", ":"), sort_keys=True) if record.queue else None,
        "pendingEvent": record.pending_event,
        "traceParent": record.trace_parent,
    }
    entity.update({k: v for k, v in optional.items() if v is not None})
    if record.pending_event:  # what ``Ledger.unsent`` selects on: claimed events not yet known sent
        entity["pendingSince"] = record.updated_at
    for name, value in record.labels.items():
        entity[label_property(name)] = value
    return entity


def from_entity(entity: Mapping[str, Any], *, etag: str | None = None) -> Record:
    times = {s.value: str(entity[prop]) for s, prop in TIME_FIELDS.items() if entity.get(prop)}
    return Record(
        key=str(entity["key"]),
        state=State(str(entity["state"])),
        times=times,
        updated_at=str(entity.get("updatedAt") or ""),
        received_at=str(entity.get("receivedAt") or ""),
        job_name=_opt(entity.get("jobName")),
        reason=_opt(entity.get("reason")),
        errors=tuple(json.loads(entity["errors"])) if entity.get("errors") else (),
        attempts=int(entity.get("attempts") or 0),
        labels=dict(json.loads(entity.get("labels") or "{}")),
        correlation_id=_opt(entity.get("correlationId")),
        image=_opt(entity.get("image")),
        content_hash=_opt(entity.get("contentHash")),
        message_id=_opt(entity.get("messageId")),
        source=_opt(entity.get("source")),
        outcome=json.loads(entity["outcome"]) if entity.get("outcome") else None,
        pending_event=_opt(entity.get("pendingEvent")),
        etag=etag,
        team=_opt(entity.get("team")),
        principal=_opt(entity.get("principal")),
        queue=json.loads(entity["queue"]) if entity.get("queue") else None,
        trace_parent=_opt(entity.get("traceParent")),
    )


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def queue_changed(before: Mapping[str, Any] | None, after: Mapping[str, Any], *, now: datetime) -> bool:
    """Whether a new position/estimate is worth a ledger write: the first one, a position moved by
    a tenth, or an estimate moved by a tenth of the time left (amortised O(1) writes per request)."""
    if not before:
        return True
    for name in ("position", "teamPosition"):
        old, new = int(before.get(name) or 0), int(after.get(name) or 0)
        if abs(old - new) >= max(1, old // 10):
            return True
    old_at, new_at = parse_time(before.get("estimatedStartAt")), parse_time(after.get("estimatedStartAt"))
    if (old_at is None) != (new_at is None):
        return True
    if old_at is not None and new_at is not None:
        left = max(60.0, (old_at - now).total_seconds())
        return bool(abs((new_at - old_at).total_seconds()) > left / 10)
    return False


# --- listing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A list filter: every given part must match."""

    state: State | None = None
    labels: tuple[tuple[str, str], ...] = ()
    since: datetime | None = None
    """Requests received at or after this moment."""
    teams: tuple[str, ...] | None = None
    """Requests of one of these teams (None: any request)."""


def query_filter(query: Query) -> tuple[str, dict[str, Any]]:
    """An OData filter with parameters (the SDK quotes them), e.g. ``state eq @state``."""
    parts = [f"RowKey eq '{ROW_KEY}'"]
    params: dict[str, Any] = {}
    if query.state is not None:
        parts.append("state eq @state")
        params["state"] = query.state.value
    if query.since is not None:
        parts.append("receivedAt ge @since")
        params["since"] = iso(query.since)
    for i, (name, value) in enumerate(query.labels):
        parts.append(f"{label_property(name)} eq @label{i}")
        params[f"label{i}"] = value
    if query.teams is not None:
        if not query.teams:
            parts.append("team eq ''")  # a caller of no team sees nothing (no record has an empty team)
        else:
            # Spaces inside the parentheses: the SDK substitutes ``@name`` only when a space follows it.
            parts.append("( " + " or ".join(f"team eq @team{i}" for i in range(len(query.teams))) + " )")
            params.update({f"team{i}": team for i, team in enumerate(query.teams)})
    return " and ".join(parts), params


def encode_page_token(token: Mapping[str, Any]) -> str:
    """Table storage's continuation (next partition/row key) as an opaque base64url string."""
    raw = json.dumps(dict(token), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(text: str) -> dict[str, Any]:
    """Inverse of :func:`encode_page_token`; ValueError when it is not one of ours."""
    if not text or len(text) > 2048 or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise ValueError("not a page token returned by this API")
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as e:
        raise ValueError("not a page token returned by this API") from e
    if (
        not isinstance(value, dict)
        or not value
        or not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items())
    ):
        raise ValueError("not a page token returned by this API")
    return value


WAKE: Final = "wake"
"""``queue.wake``: the handle of the message carrying a waiting request (``shared.base.handles``),
for the reconciler's wake-ups; never shown by the API (a pop receipt lets its holder change the
message)."""


def view(record: Record, *, trace_link: Callable[[str | None], str | None] | None = None) -> dict[str, Any]:
    """The API's JSON representation of a record (docs/openapi.yaml ``Request``); ``trace_link``:
    a trace id → the link to its trace (VNB_TRACE_URL), shown as ``traceUrl``."""
    trace_id = trace_id_of(record)
    out: dict[str, Any] = {
        "id": record.key,
        "state": record.state.value,
        "terminal": record.terminal,
        "receivedAt": record.received_at,
        "updatedAt": record.updated_at,
        "times": dict(record.times),
        "attempts": record.attempts,
        "labels": dict(record.labels),
    }
    optional = {
        "jobName": record.job_name,
        "reason": record.reason,
        "errors": list(record.errors) or None,
        "correlationId": record.correlation_id,
        "image": record.image,
        "outcome": record.outcome,
        "source": record.source,
        "team": record.team,
        "submittedBy": record.principal,
        "queue": {k: v for k, v in record.queue.items() if k != WAKE} if record.queue else None,
        "traceId": trace_id,
        "traceUrl": trace_link(trace_id) if trace_link is not None else None,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


def trace_id_of(record: Record) -> str | None:
    """The trace id of the request's trace (32 hex digits), if it has one."""
    parsed = parse(record.trace_parent)
    return parsed.trace_id if parsed else None
