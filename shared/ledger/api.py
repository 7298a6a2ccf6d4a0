"""The HTTP API's behaviour (``functions/api.py`` is a thin binding over it): submit, status,
list and cancel requests. Described by docs/openapi.yaml.

Responses are values (:class:`ApiResponse`); every error is an RFC 9457 problem details
object (``application/problem+json``) with a stable ``type`` URI, never a traceback.

Submit validates synchronously with the very code the queue path uses (``decode_body`` +
``parse_request``: the same field errors as a ``request.rejected`` event), records the request
in the ledger (``received``, insert-if-absent: the idempotency check) and then *enqueues* it on
the requests queue. Dispatch then runs it exactly as a queued request — one code path creates
Jobs, with the cluster gate, deferral, retries and poison handling — and the HTTP function
never waits on Kubernetes or ARM. A retried POST after a crash between the two writes finds
``received`` and enqueues again, which dispatch absorbs (same key, same Job).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shared.adapters.kube import Cluster
from shared.base import kube_names
from shared.base.conventions import CONTROLLER_UID
from shared.base.errors import FieldError, VnbError
from shared.base.times import iso, parse_time
from shared.config.settings import Settings
from shared.cost.pricing import job_cost
from shared.intake import trace
from shared.intake.decode import decode_body
from shared.intake.request import MAX_BODY_BYTES, TEAM_PATTERN, RequestInvalid, parse_request
from shared.ledger import params as query
from shared.ledger.outcome_writer import Ending, finish, mark_sent, unsent
from shared.ledger.records import ACTIVE, WAITING, Query, Record, State, new_record, view
from shared.ledger.responses import ApiResponse, bad_id, invalid, location, not_found, problem, unavailable
from shared.ledger.store import Ledger
from shared.ledger.summary import DEFAULT_WINDOW_HOURS, HeldNow, scan_filter, summarize
from shared.outcomes import events
from shared.teams.files import teams_for
from shared.teams.model import Caller, Teams, team_errors
from shared.telemetry import names, signals

log = logging.getLogger("vnode_batch.api")

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
LIST_PARAMS: Final = frozenset({"state", "label", "since", "pageToken", "limit", "team"})
SUMMARY_PARAMS: Final = frozenset({"since"})
SendEvent = Callable[[str], object]
Enqueue = Callable[[str], object]
ClusterNow = Callable[[], Cluster | None]


class RequestsApi:
    """Submit, status, list and cancel. Dependencies are passed in (the app's, or a test's)."""

    def __init__(
        self,
        *,
        settings: Settings,
        ledger: Ledger,
        enqueue: Enqueue,
        send_event: SendEvent,
        cluster: ClusterNow,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        teams: Teams | None = None,
        holdings: HeldNow | None = None,
    ) -> None:
        self.settings = settings
        self.teams = teams if teams is not None else teams_for(settings)
        self.ledger = ledger
        self.enqueue = enqueue
        self.send_event = send_event
        self.cluster = cluster
        self.now = now
        self.holdings = holdings or (lambda: None)
        """What the app's pods hold now (``shared.flows.runtime`` reads the cluster); without it
        the summary shows nothing in use."""

    def _view(self, record: Record) -> dict[str, Any]:
        """A record as the API shows it, with ``traceUrl`` when VNB_TRACE_URL is set."""
        return view(record, trace_link=self.settings.trace_link)

    # --- POST /api/requests ----------------------------------------------------------------

    def handle(self, call: Callable[[], ApiResponse]) -> ApiResponse:
        """Run one operation; storage or cluster outages become 503 problem details."""
        try:
            return call()
        except VnbError as e:
            # The cause (URLs, a principal id in an authorization error) goes to the log only.
            log.warning("API call failed: %s", e)
            return unavailable("a backing service is not available now; retry")

    # --- tenancy (issue 22) -------------------------------------------------------------------

    def _sees(self, caller: Caller | None, record: Record) -> bool:
        """Whether ``caller`` may see (and cancel) ``record``: its team's member or an operator.
        Without a teams file, or for the app's own calls (``caller`` None), everyone sees all."""
        if caller is None or not self.teams.enabled or self.teams.is_operator(caller):
            return True
        return record.team is not None and record.team in self.teams.of(caller)

    def _team_for(self, caller: Caller | None, data: dict[str, Any]) -> tuple[str | None, ApiResponse | None]:
        """The team of a submitted request: the caller's (the body may pick one of the caller's
        teams, an operator's body any team); never one the caller is not in."""
        named = data.get("team")
        if caller is None or not self.teams.enabled:
            return (named if isinstance(named, str) else None), None
        mine = self.teams.of(caller)
        if self.teams.is_operator(caller) and isinstance(named, str):
            return named, None
        if not mine:
            return None, problem(
                403, "no-team", "Caller belongs to no team", "this app is shared by teams; ask its operators to add you"
            )
        if named is None:
            if len(mine) > 1:
                error = FieldError("team", "you belong to several teams: name one of " + ", ".join(mine))
                return None, invalid([error])
            return mine[0], None
        if named not in mine:
            return None, invalid([FieldError("team", "not one of your teams: " + ", ".join(mine))])
        return str(named), None

    def submit(self, body: bytes, *, content_type: str | None = None, caller: Caller | None = None) -> ApiResponse:
        """Validate, record (idempotent on ``id``), enqueue; 202 with a Location."""
        if content_type and content_type.split(";")[0].strip().lower() not in ("application/json", ""):
            return problem(
                415, "unsupported-media-type", "Unsupported media type", "send the request as application/json"
            )
        if len(body) > MAX_BODY_BYTES:
            return problem(
                413,
                "body-too-large",
                "Request body too large",
                f"the body is {len(body)} bytes; at most {MAX_BODY_BYTES} (a request must fit one queue message)",
                errors=[FieldError("$body", f"at most {MAX_BODY_BYTES} bytes")],
            )
        data, errors = decode_body(body)
        if data is None:
            return invalid(errors)
        data, producer = trace.split(data)  # the body's own traceparent, as on the queue
        team, refused = self._team_for(caller, data)
        if refused is not None:
            return refused
        if team is not None:
            data = {**data, "team": team}
        try:
            request = parse_request(data, settings=self.settings)
        except RequestInvalid as e:
            return invalid(e.errors)
        not_allowed = team_errors(self.teams, request)
        if not_allowed:
            return invalid(not_allowed)
        key = request.id or str(uuid.uuid4())
        now = self.now()
        # The request's trace starts here (a child of the host's HTTP request span, or of the body's
        # traceparent); dispatch joins it through the ledger record and the enqueued traceparent.
        with signals.span(names.SPAN_RECEIVE, parent=producer.traceparent, parent_state=producer.tracestate) as span:
            span.set({names.REQUEST_KEY: key, names.SOURCE: "api"})
        started = trace.of(span.traceparent, span.tracestate) if span.traceparent else producer
        first = replace(
            new_record(
                key,
                State.RECEIVED,
                now,
                content_hash=request.content_hash(),
                image=request.image,
                labels=request.labels,
                correlation_id=request.correlationId,
                source="api",
                team=request.team,
                principal=caller.name if caller is not None and caller.name else None,
            ),
            trace_parent=started.traceparent,
        )
        record, inserted = self.ledger.create(first)
        if inserted:
            signals.add(names.RECEIVED, 1, {names.SOURCE: "api", names.TEAM: request.team or ""})
        if not self._sees(caller, record):  # another team's id: say nothing about it
            return problem(
                409,
                "id-reused",
                "Request id already used",
                f"id {key!r} is already used; use a new id for new work",
                errors=[FieldError("id", "already used")],
            )
        if record.content_hash is not None and record.content_hash != request.content_hash():
            return problem(
                409,
                "id-reused",
                "Request id already used",
                f"id {key!r} was already used for a different request ({record.state}); use a new id for new work",
                errors=[FieldError("id", "already used for a different request")],
                instance=location(key),
            )
        if inserted or record.state == State.RECEIVED:
            # A record still "received" may be a retry after a crash before the enqueue:
            # enqueue again (dispatch turns a duplicate into a no-op).
            carried = trace.of(record.trace_parent) if record.trace_parent else started
            fields = {"traceparent": carried.traceparent, "tracestate": carried.tracestate}
            message = {**data, "id": key, **{k: v for k, v in fields.items() if v}}
            self.enqueue(json.dumps(message, separators=(",", ":"), ensure_ascii=False))
        headers = {"Location": location(key)}
        return ApiResponse(202, self._view(record), headers)

    # --- GET /api/requests/{id} ------------------------------------------------------------

    def status(self, key: str, *, caller: Caller | None = None) -> ApiResponse:
        invalid = bad_id(key)
        if invalid is not None:
            return invalid
        record = self.ledger.get(key)
        if record is None or not self._sees(caller, record):  # 404, not 403: another team's id is not disclosed
            return not_found(key)
        return ApiResponse(200, self._view(record))

    # --- GET /api/requests ------------------------------------------------------------------

    def list(self, params: Mapping[str, str | Sequence[str]], *, caller: Caller | None = None) -> ApiResponse:
        errors = query.unknown(params, LIST_PARAMS)
        state = None
        raw_state = query.one(params, "state")
        if raw_state:
            try:
                state = State(raw_state)
            except ValueError:
                errors.append(FieldError("state", "one of " + ", ".join(s.value for s in State)))
        labels: list[tuple[str, str]] = []
        for raw in query.every(params, "label"):
            for part in (p for p in raw.split(",") if p):
                name, sep, value = part.partition("=")
                if not sep or kube_names.label_key(name) or kube_names.label_value(value):
                    errors.append(
                        FieldError("label", f"{part[:80]!r}: expected key=value with a Kubernetes label key and value")
                    )
                else:
                    labels.append((name, value))
        since = query.since(params, errors)
        limit = DEFAULT_LIMIT
        raw_limit = query.one(params, "limit")
        if raw_limit:
            if re.fullmatch(r"[0-9]{1,3}", raw_limit) and 1 <= int(raw_limit) <= MAX_LIMIT:
                limit = int(raw_limit)
            else:
                errors.append(FieldError("limit", f"a whole number from 1 to {MAX_LIMIT}"))
        token = query.one(params, "pageToken") or None
        wanted = query.one(params, "team")
        if wanted and not re.fullmatch(TEAM_PATTERN, wanted):
            errors.append(FieldError("team", "a team name: 1-32 lowercase letters, digits and -"))
        if errors:
            return problem(400, "invalid-query", "Invalid query parameters", query.join(errors), errors=errors)
        teams = None
        if caller is not None and self.teams.enabled and not self.teams.is_operator(caller):
            teams = self.teams.of(caller)
        if wanted:
            teams = (wanted,) if teams is None or wanted in teams else ()
        try:
            records, nxt = self.ledger.list(
                Query(state=state, labels=tuple(labels), since=since, teams=teams), limit=limit, page_token=token
            )
        except ValueError as e:
            error = FieldError("pageToken", str(e))
            return problem(400, "invalid-query", "Invalid query parameters", query.join([error]), errors=[error])
        body: dict[str, Any] = {"items": [self._view(r) for r in records]}
        if nxt:
            body["nextPageToken"] = nxt
        return ApiResponse(200, body)

    # --- GET /api/summary ---------------------------------------------------------------------

    def summary(self, params: Mapping[str, str | Sequence[str]], *, caller: Caller | None = None) -> ApiResponse:
        """Per team the caller may see: running, waiting, cores/groups in use vs share and borrowing
        limit, and what finished (and cost) since ``?since=`` (default: the last 24 h);
        ``shared.ledger.summary`` says where each number comes from. 400 for an unknown parameter
        or a ``since`` that is not RFC 3339; 503 when the ledger or the cluster does not answer."""
        errors = query.unknown(params, SUMMARY_PARAMS)
        since = query.since(params, errors)
        if errors:
            return problem(400, "invalid-query", "Invalid query parameters", query.join(errors), errors=errors)
        now = self.now()
        since = since or now - timedelta(hours=DEFAULT_WINDOW_HOURS)
        visible = None
        if caller is not None and self.teams.enabled and not self.teams.is_operator(caller):
            visible = self.teams.of(caller)
        text, values = scan_filter(since)
        body = summarize(
            self.ledger.scan(text, values),
            holdings=self.holdings(),
            teams=self.teams,
            visible=visible,
            budget=(self.settings.capacity_cores, self.settings.capacity_container_groups),
            since=since,
            now=now,
            currency=self.settings.price_currency,
        )
        return ApiResponse(200, body)

    # --- DELETE /api/requests/{id} ---------------------------------------------------------

    def cancel(self, key: str, *, caller: Caller | None = None) -> ApiResponse:
        """Waiting → it never runs (``request.cancelled``); submitted/running → its Job is
        deleted (``job.cancelled`` with what ran); finished → 409; unknown → 404.

        The cancel is claimed in the ledger before anything else (``shared.ledger.outcome_writer``:
        the record moves to ``cancelled`` with the event's id and text, conditional on the state
        read): the dispatcher then never creates the Job (or deletes one it just created), and a
        reconciler about to report the Job loses its own claim and sends nothing. Then the Job is
        deleted and the event sent. A cancel cut short (crash, 503) is completed by repeating the
        DELETE — or by the dispatcher or reconciler that next meets the request: the kept event
        text goes out with the same id.
        """
        invalid = bad_id(key)
        if invalid is not None:
            return invalid
        for _ in range(3):
            record = self.ledger.get(key)
            if record is None or not self._sees(caller, record):  # another team's: 404, nothing done
                return not_found(key)
            if record.state == State.CANCELLED:  # a repeat: finish what the first DELETE started
                return self._complete_cancel(record)
            if record.terminal:
                return problem(
                    409,
                    "already-finished",
                    "Request already finished",
                    f"request {key!r} is {record.state}; only waiting or running requests can be cancelled",
                    instance=location(key),
                    state=record.state.value,
                )
            claimed = self._claim_cancel(record)
            if isinstance(claimed, ApiResponse):
                return claimed
            if claimed is not None:
                return self._complete_cancel(claimed)
        return problem(
            503,
            "busy",
            "Request is changing",
            "the request changed state repeatedly; retry",
            headers={"Retry-After": "1"},
        )

    def _claim_cancel(self, record: Record) -> Record | ApiResponse | None:
        """Claim ``cancelled`` for ``record`` as read (None: it changed meanwhile, read again).

        A request with a Job: the Job is read first (its uid is part of the event id, and what ran
        so far and its cost go into the event); the event text is built before the claim and kept
        in the record until it is known sent."""
        was = record.state
        now = self.now()
        data: dict[str, Any] = {}
        if record.job_name is None or was in WAITING:
            text = events.request_cancelled(
                source=self.settings.event_source,
                key=record.key,
                now=now,
                state=was.value,
                correlation_id=record.correlation_id,
                received_at=record.received_at or None,
            )
        else:
            try:
                cluster = self.cluster()
                if cluster is None:
                    return unavailable("the cluster is not reachable now")
                job = cluster.get_job(record.job_name)
                pods = cluster.list_pods(label_selector=f"{CONTROLLER_UID}={_job_uid(job)}") if job is not None else []
            except VnbError as e:
                log.warning("cancel %s: reading Job %s failed: %s", record.key, record.job_name, e)
                return unavailable("the cluster did not answer now; repeat the DELETE")
            data = ran(job, record, namespace=self.settings.namespace, state=was, now=now)
            data["cost"] = job_cost(pods, prices=self.settings.prices, until=now)
            text = events.job_cancelled(
                source=self.settings.event_source, key=record.key, job_uid=_job_uid(job), now=now, data=data
            )
        event = json.loads(text)
        ending = Ending(
            State.CANCELLED,
            event_id=str(event["id"]),
            event_type=str(event["type"]),
            claimed_by="api",
            reason=f"cancelled through the API while {was}",
            data={**data, "finishedAt": iso(now)} if data else {},  # what ran and its cost (``cli cost``)
            pending_event=text,
        )
        claim = finish(
            self.ledger,
            record.key,
            ending,
            now,
            create=lambda: new_record(record.key, State.CANCELLED, now),
            owns=lambda current: current.state == was,  # changed since read: decide again
            known=record,
        )
        return claim.record if claim.owned else None

    def _complete_cancel(self, record: Record) -> ApiResponse:
        """Delete the Job (if any), send the claimed event if not yet sent, note it sent.

        Safe to repeat: a repeat after the event was noted sends nothing; a repeat of a cancel
        cut short before that (crash, 503) completes it with the same event id."""
        text = unsent(record)
        if text is None:
            return ApiResponse(200, self._view(record))
        if record.job_name and json.loads(text).get("type") == events.JOB_CANCELLED:
            try:
                cluster = self.cluster()
                if cluster is None:
                    return unavailable("the cluster is not reachable now; repeat the DELETE")
                cluster.delete_job(record.job_name, propagation="Background")
            except VnbError as e:
                log.warning("cancel %s: deleting Job %s failed: %s", record.key, record.job_name, e)
                return unavailable("the cluster did not take the cancellation now; repeat the DELETE")
        self.send_event(text)
        return ApiResponse(200, self._view(mark_sent(self.ledger, record)))


def ran(
    job: Mapping[str, Any] | None, record: Record, *, namespace: str, state: State | None, now: datetime
) -> dict[str, Any]:
    """``job.cancelled`` data: what ran before the Job was deleted (pod counts, start, duration)."""
    status = (job or {}).get("status") or {}
    started = parse_time(status.get("startTime"))
    return {
        "requestKey": record.key,
        "jobName": record.job_name or "",
        "namespace": namespace,
        "jobUid": _job_uid(job),
        "correlationId": record.correlation_id,
        "state": state.value if state in ACTIVE else State.SUBMITTED.value,
        "startedAt": iso(started) if started else None,
        "cancelledAt": iso(now),
        "durationSeconds": round((now - started).total_seconds(), 3) if started else None,
        "ran": {k: int(status.get(k) or 0) for k in ("active", "succeeded", "failed")},
    }


def _job_uid(job: Mapping[str, Any] | None) -> str | None:
    uid = ((job or {}).get("metadata") or {}).get("uid")
    return str(uid) if uid else None
