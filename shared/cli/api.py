"""CLI commands on the HTTP API (docs/openapi.yaml): ``status``, ``ls``, ``cancel`` and
``submit --wait``. Wired into ``python -m shared.cli``.

Where the API is: ``--api-url`` or ``VNB_API_URL`` (``http://127.0.0.1:7071`` for the local
host, ``https://<app>.azurewebsites.net`` in Azure); credentials: ``--function-key`` /
``VNB_FUNCTION_KEY`` (sent as ``x-functions-key``) and/or ``--token`` / ``VNB_API_TOKEN`` (an
Entra ID bearer token, for App Service authentication). Output is readable by default,
``--json`` prints the API's JSON. Exit codes: 0 ok, 2 invalid input, 3 not found,
4 conflict (e.g. already finished), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote, urlencode

EXIT_INVALID = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
TERMINAL = frozenset({"succeeded", "failed", "rejected", "dead-lettered", "cancelled"})


class ApiError(Exception):
    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        self.status = status
        self.body = dict(body)
        super().__init__(f"HTTP {status}: {body.get('title', '')}: {body.get('detail', '')}")


@dataclass(frozen=True)
class ApiClient:
    """A small JSON client for the requests API (stdlib urllib: no extra dependency)."""

    base_url: str
    function_key: str | None = None
    token: str | None = None
    timeout: float = 30.0

    def call(
        self, method: str, path: str, *, body: bytes | None = None, query: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        url = self.base_url.rstrip("/") + path + ("?" + urlencode(query) if query else "")
        headers = {"Accept": "application/json, application/problem+json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.function_key:
            headers["x-functions-key"] = self.function_key
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - URL from the user
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.status, _json(response.read()), dict(response.headers)
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, _json(e.read()) or {"title": e.reason, "detail": ""}) from None

    def submit(self, body: bytes) -> tuple[dict[str, Any], str]:
        _, record, headers = self.call("POST", "/api/requests", body=body)
        return record, headers.get("Location") or f"/api/requests/{quote(str(record['id']), safe='')}"

    def status(self, key: str) -> dict[str, Any]:
        return self.call("GET", f"/api/requests/{quote(key, safe='')}")[1]

    def cancel(self, key: str) -> dict[str, Any]:
        return self.call("DELETE", f"/api/requests/{quote(key, safe='')}")[1]

    def list(self, query: Mapping[str, str]) -> dict[str, Any]:
        return self.call("GET", "/api/requests", query=query)[1]

    def summary(self, query: Mapping[str, str]) -> dict[str, Any]:
        return self.call("GET", "/api/summary", query=query)[1]


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {"title": "not JSON", "detail": raw[:200].decode("utf-8", errors="replace")}
    return value if isinstance(value, dict) else {"value": value}


def client_from(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> ApiClient:
    env = os.environ if environ is None else environ
    url = args.api_url or env.get("VNB_API_URL")
    if not url:
        raise SystemExit("set VNB_API_URL (or --api-url), e.g. http://127.0.0.1:7071 for the local host")
    return ApiClient(
        base_url=url,
        function_key=args.function_key or env.get("VNB_FUNCTION_KEY") or None,
        token=args.token or env.get("VNB_API_TOKEN") or None,
    )


# --- rendering ----------------------------------------------------------------------------


def format_record(record: Mapping[str, Any]) -> str:
    """One line: id, state, job, when, reason/outcome."""
    parts = [f"{record.get('id', '?'):<32}", f"{record.get('state', '?'):<20}"]
    parts.append(f"job={record.get('jobName') or '-'}")
    if record.get("team"):
        parts.append(f"team={record['team']}")
    place = record.get("queue") or {}
    if place.get("position"):
        parts.append(f"place={place['position']}/{place.get('waiting', '?')}")
    parts.append(f"updated={record.get('updatedAt', '-')}")
    outcome = record.get("outcome") or {}
    if outcome.get("exitCode") is not None:
        parts.append(f"exit={outcome['exitCode']}")
    if record.get("reason"):
        parts.append(f"reason={str(record['reason'])[:80]}")
    if record.get("labels"):
        parts.append("labels=" + ",".join(f"{k}={v}" for k, v in sorted(record["labels"].items())))
    return "  ".join(parts)


def format_detail(record: Mapping[str, Any]) -> str:
    lines = [f"{record.get('id')}: {record.get('state')}"]
    for key in ("team", "submittedBy", "jobName", "correlationId", "image", "reason", "attempts", "source"):
        if record.get(key) not in (None, "", 0):
            lines.append(f"  {key}: {record[key]}")
    if record.get("labels"):
        lines.append("  labels: " + ", ".join(f"{k}={v}" for k, v in sorted(record["labels"].items())))
    place = record.get("queue") or {}
    if place.get("position"):
        lines.append(
            f"  place: {place['position']} of {place.get('waiting', '?')} waiting "
            f"({place.get('teamPosition', '?')} of {place.get('teamWaiting', '?')} in its team)"
        )
    if place.get("estimatedBy"):
        lines.append(f"  estimated start: {place.get('estimatedStartAt', 'unknown')} ({place['estimatedBy']})")
    for state, at in sorted((record.get("times") or {}).items(), key=lambda kv: kv[1]):
        lines.append(f"  {at}  {state}")
    for error in record.get("errors") or []:
        lines.append(f"  error {error.get('field')}: {error.get('message')}")
    outcome = record.get("outcome") or {}
    if outcome:
        shown = {k: outcome[k] for k in ("outcome", "reason", "exitCode", "durationSeconds") if k in outcome}
        lines.append("  outcome: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    return "\n".join(lines)


def _problem(e: ApiError, stream: TextIO) -> int:
    print(f"error {e.status}: {e.body.get('title', '')}: {e.body.get('detail', '')}", file=stream)
    for error in e.body.get("errors") or []:
        print(f"  {error.get('field')}: {error.get('message')}", file=stream)
    if e.status == 404:
        return EXIT_NOT_FOUND
    if e.status == 409:
        return EXIT_CONFLICT
    return EXIT_INVALID if 400 <= e.status < 500 else 1


# --- commands -----------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    try:
        record = client_from(args).status(args.id)
    except ApiError as e:
        return _problem(e, sys.stderr)
    print(json.dumps(record, indent=2) if args.json else format_detail(record))
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    if args.summary:
        return cmd_summary(args)
    query: dict[str, str] = {}
    if args.state:
        query["state"] = args.state
    if args.label:
        query["label"] = ",".join(args.label)
    if args.since:
        query["since"] = args.since
    if args.team:
        query["team"] = args.team
    query["limit"] = str(args.limit)
    client = client_from(args)
    shown = 0
    try:
        while True:
            page = client.list(query)
            for record in page.get("items") or []:
                print(json.dumps(record) if args.json else format_record(record))
                shown += 1
            token = page.get("nextPageToken")
            if not token or not args.all:
                break
            query["pageToken"] = token
    except ApiError as e:
        return _problem(e, sys.stderr)
    if not args.json and shown == 0:
        print("no requests match", file=sys.stderr)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """Per team (GET /api/summary): running, waiting, cores/groups in use vs share and borrowing
    limit, and what finished since ``--since`` (default: the last 24 h)."""
    query = {"since": args.since} if args.since else {}
    try:
        body = client_from(args).summary(query)
    except ApiError as e:
        return _problem(e, sys.stderr)
    if args.team:
        body = {**body, "teams": [t for t in body.get("teams") or [] if t.get("team") == args.team]}
    print(json.dumps(body, indent=2) if args.json else format_summary(body))
    return 0


def _of(used: Any, share: Any, limit: Any, number: str) -> str:
    text = format(used or 0, number)
    if share is not None:
        text += "/" + format(share, number)
        text += f"+{format(limit, number)}" if limit is not None else "+∞"
    return text


def format_summary(body: Mapping[str, Any]) -> str:
    """A table: one row per team, then the whole app's capacity. ``cores`` reads as
    ``in use/share+borrowing limit`` (``+∞``: no limit but the budget; no share: no teams file)."""
    head = f"{'team':<20}{'running':>8}{'waiting':>8}  {'cores':<16}{'groups':<12}{'done':>6}{'failed':>7}  cost"
    lines = [head]
    for t in body.get("teams") or []:
        cores, groups, done = t.get("cores") or {}, t.get("groups") or {}, t.get("finished") or {}
        failed = sum(int(done.get(k) or 0) for k in ("failed", "deadlettered", "rejected"))
        cost = t.get("cost") or {}
        lines.append(
            f"{t.get('team') or '-':<20}{t.get('running', 0):>8}{t.get('waiting', 0):>8}  "
            f"{_of(cores.get('inUse'), cores.get('share'), cores.get('borrowLimit'), 'g'):<16}"
            f"{_of(groups.get('inUse'), groups.get('share'), groups.get('borrowLimit'), 'd'):<12}"
            f"{int(done.get('succeeded') or 0):>6}{failed:>7}  {cost.get('amount', 0):.2f} {cost.get('currency', '')}"
        )
        why = t.get("waitingByReason") or {}
        if why:
            lines.append(" " * 20 + "waiting: " + ", ".join(f"{k} {v}" for k, v in sorted(why.items())))
    cap = body.get("capacity") or {}
    cores, groups = cap.get("cores") or {}, cap.get("groups") or {}
    lines.append(
        f"capacity: {format(cores.get('inUse', 0), 'g')}/{format(cores.get('budget', 0), 'g')} cores, "
        f"{groups.get('inUse', 0)}/{groups.get('budget', 0)} container groups in use, "
        f"{cap.get('waiting', 0)} waiting (at {body.get('at', '?')})"
    )
    return "\n".join(lines)


def cmd_cancel(args: argparse.Namespace) -> int:
    try:
        record = client_from(args).cancel(args.id)
    except ApiError as e:
        return _problem(e, sys.stderr)
    print(json.dumps(record, indent=2) if args.json else f"{record['id']}: cancelled ({record.get('reason') or ''})")
    return 0


def submit_and_wait(
    args: argparse.Namespace, bodies: Sequence[bytes], *, out: TextIO | None = None, poll: float = 1.0
) -> int:
    """POST each request, then follow each until a terminal state, printing every change.

    Exit code: 0 if every request succeeded, 1 if any ended otherwise, 2 if one was invalid.
    """
    stream = out or sys.stdout
    client = client_from(args)
    keys: list[str] = []
    for body in bodies:
        try:
            record, where = client.submit(body)
        except ApiError as e:
            return _problem(e, sys.stderr)
        keys.append(str(record["id"]))
        if not args.json:
            print(f"accepted {record['id']} → {where}", file=stream)
    started = time.monotonic()
    last: dict[str, str] = {}
    final: dict[str, dict[str, Any]] = {}
    deadline = started + args.timeout if args.timeout else None
    while len(final) < len(keys):
        for key in keys:
            if key in final:
                continue
            try:
                record = client.status(key)
            except ApiError as e:
                return _problem(e, sys.stderr)
            state = str(record.get("state"))
            if last.get(key) != state:
                last[key] = state
                if args.json:
                    print(json.dumps({"id": key, "state": state, "at": datetime.now(UTC).isoformat()}), file=stream)
                else:
                    print(f"  +{time.monotonic() - started:6.1f}s  {key}  {state}", file=stream)
                stream.flush()
            if state in TERMINAL or record.get("terminal") is True:  # the API's own word, for states added later
                final[key] = record
        if len(final) < len(keys):
            if deadline is not None and time.monotonic() > deadline:
                print(
                    f"gave up after {args.timeout:.0f} s; still running: {sorted(set(keys) - set(final))}",
                    file=sys.stderr,
                )
                return 1
            time.sleep(poll)
    for key in keys:
        print(json.dumps(final[key]) if args.json else format_detail(final[key]), file=stream)
    return 0 if all(r.get("state") == "succeeded" for r in final.values()) else 1


def add_api_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api-url", help="base URL of the Function App (default: $VNB_API_URL)")
    p.add_argument("--function-key", help="function key (default: $VNB_FUNCTION_KEY)")
    p.add_argument("--token", help="Entra ID bearer token (default: $VNB_API_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the API's JSON")


def register(sub: Any) -> None:
    """Add ``status``, ``ls`` and ``cancel`` to the CLI's subcommands."""
    p = sub.add_parser("status", help="where is this request? (HTTP API)")
    p.add_argument("id")
    add_api_options(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("ls", help="list requests by state and labels (HTTP API)")
    p.add_argument("--state", help="received, waiting-for-cluster, running, succeeded, ...")
    p.add_argument("--label", action="append", default=[], help="key=value (repeatable; all must match)")
    p.add_argument("--since", help="received at or after (RFC 3339, e.g. 2026-11-27T00:00:00Z)")
    p.add_argument("--limit", type=int, default=50, help="rows per page (1-200)")
    p.add_argument("--all", action="store_true", help="follow nextPageToken to the end")
    p.add_argument("--team", help="only this team's requests (one of yours; operators: any)")
    p.add_argument("--summary", action="store_true", help="the per-team summary instead (as `summary`)")
    add_api_options(p)
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("summary", help="per team: running, waiting, cores/groups in use vs share, finished (HTTP API)")
    p.add_argument("--since", help="finished and cost since (RFC 3339; default: the last 24 h)")
    p.add_argument("--team", help="only this team's row")
    add_api_options(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("cancel", help="cancel a waiting or running request (HTTP API)")
    p.add_argument("id")
    add_api_options(p)
    p.set_defaults(func=cmd_cancel)
