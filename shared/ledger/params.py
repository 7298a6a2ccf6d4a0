"""Query parameters of the HTTP API's GET routes (pure): one value, all values, ``since``.

The Functions host hands the worker every query parameter, repeated ones as a list
(``GrpcMessageConversionExtensions.ToRpcHttp``), so each reader takes ``str | Sequence[str]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from shared.base.errors import FieldError
from shared.base.times import parse_time

Params = Mapping[str, str | Sequence[str]]
HOST_PARAMS: Final = frozenset({"code"})
"""Query parameters the Functions host reads and still passes on: ``code`` is where a caller may
put the function key (azure-functions-host ``AuthenticationLevelHandler``), and the host hands
the whole query to the worker (``GrpcMessageConversionExtensions.ToRpcHttp``)."""
_RFC3339: Final = re.compile(r"\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:\d{2})", re.ASCII)


def one(params: Params, name: str) -> str:
    """The last value of ``name`` ("" when absent)."""
    value = params.get(name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value[-1] if value else ""


def every(params: Params, name: str) -> list[str]:
    """Every value of ``name``, in order."""
    value = params.get(name)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def unknown(params: Params, known: frozenset[str]) -> list[FieldError]:
    """One error per parameter neither in ``known`` nor the host's own."""
    names = sorted(set(params) - known - HOST_PARAMS)
    return [FieldError(n, "unknown query parameter (known: " + ", ".join(sorted(known)) + ")") for n in names]


def since(params: Params, errors: list[FieldError]) -> datetime | None:
    """``since`` as an aware UTC time (None when absent); appends to ``errors`` when it is not
    RFC 3339 with an offset."""
    raw = one(params, "since")
    if not raw:
        return None
    moment = parse_time(raw)
    if moment is None or not _RFC3339.fullmatch(raw):
        errors.append(FieldError("since", "an RFC 3339 time with offset, e.g. 2026-11-27T00:00:00Z"))
        return None
    return utc_within_range(moment)


def utc_within_range(moment: datetime) -> datetime:
    """``moment`` in UTC; an RFC 3339 time whose UTC falls outside years 1-9999 (e.g.
    ``0001-01-01T00:00:00+01:00``) is clamped to the first or last representable instant, which
    selects the same records (everything, or nothing), instead of overflowing into an HTTP 500."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC) if moment.year == 1 else datetime.max.replace(tzinfo=UTC)


def join(errors: Sequence[FieldError]) -> str:
    """The errors as one ``detail`` line."""
    return "; ".join(f"{e.field}: {e.message}" for e in errors)[:2000]
