"""The HTTP API's answers as values (pure): :class:`ApiResponse`, RFC 9457 problem details with a
stable ``type`` URI, and the request-id check every ``/api/requests/{id}`` route makes first."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from shared.base.errors import FieldError, bounded
from shared.base.text import clean
from shared.ledger import params as query

PROBLEM_BASE: Final = "https://vnode-batch.dev/problems"
PROBLEM_JSON: Final = "application/problem+json"
_MESSAGE_ID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._:@+-]{0,126}[A-Za-z0-9])?")  # fullmatch: `$` passes a final "\n"


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def text(self) -> str:
        return "" if self.body is None else json.dumps(self.body, separators=(",", ":"), ensure_ascii=False)


def problem(
    status: int,
    kind: str,
    title: str,
    detail: str,
    *,
    errors: Sequence[FieldError] = (),
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ApiResponse:
    """An RFC 9457 problem details response; ``errors`` as in ``request.rejected`` events."""
    body: dict[str, Any] = {
        "type": f"{PROBLEM_BASE}/{kind}",
        "title": title,
        "status": status,
        "detail": clean(detail, 4000),
    }
    if instance:
        body["instance"] = instance
    if errors:  # echoed input: valid UTF-8 and bounded, like a rejection event's
        body["errors"] = [e.as_dict() for e in bounded(errors)]
    body.update(extra)
    return ApiResponse(status, body, dict(headers or {}), PROBLEM_JSON)


def location(key: str) -> str:
    return f"/api/requests/{quote(key, safe='')}"


def bad_id(key: str) -> ApiResponse | None:
    if _ID.fullmatch(key) or _is_message_id(key):
        return None
    return problem(
        400,
        "invalid-id",
        "Invalid request id",
        "a request id is 1-128 letters, digits and . _ : @ + -, starting and ending with a letter or digit",
        errors=[FieldError("id", "not a request id")],
    )


def _is_message_id(key: str) -> bool:
    # The canonical GUID form Queue storage gives message ids; not uuid.UUID(), which also takes
    # braces, "urn:uuid:" and (through int()) surrounding whitespace such as a final "\n".
    return _MESSAGE_ID.fullmatch(key) is not None


def invalid(errors: Sequence[FieldError]) -> ApiResponse:
    return problem(400, "invalid-request", "Invalid request", query.join(errors), errors=errors)


def not_found(key: str) -> ApiResponse:
    return problem(404, "not-found", "Unknown request", f"no request with id {key!r}", instance=location(key))


def unavailable(detail: str) -> ApiResponse:
    return problem(503, "unavailable", "Try again", detail, headers={"Retry-After": "5"})
