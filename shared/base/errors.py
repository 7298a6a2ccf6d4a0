"""Errors that say whether retrying can help (after kopf's PermanentError/TemporaryError).

The functions map them onto the host's semantics: a TransientError is raised out of the
function so the host retries the message (visibility timeout) and finally poisons it; a
PermanentError is answered with an event and the message completes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from shared.base.text import clean

MAX_FIELD_ERRORS: Final = 20
"""Field errors kept in an event, an entity or a 400 answer (the last one says how many more)."""
MAX_FIELD_CHARS: Final = 200
MAX_MESSAGE_CHARS: Final = 600
MAX_ERRORS_BYTES: Final = 16 * 1024
"""UTF-8 bytes all kept field errors may take: a rejection event (at most 60 KiB) always has room
for them and its fixed fields, whatever the producer sent."""


class VnbError(Exception):
    """Base class. ``status`` keeps the HTTP status of the API call that failed, if any."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class PermanentError(VnbError):
    """Retrying the same message cannot succeed (bad input, forbidden, conflicting id)."""


class TransientError(VnbError):
    """May succeed later (5xx, throttling, timeouts, connection resets): let the host retry."""

    retryable = True

    def __init__(
        self, message: str, *, status: int | None = None, reason: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status, reason=reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class FieldError:
    """One problem with a request: where (a JSON path like ``env.FOO``) and what."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass(frozen=True)
class ArmFault:
    """An ARM call that failed: HTTP status (None: no answer), ARM error code and message."""

    status: int | None
    code: str | None
    message: str
    retry_after: float | None = None


def bounded(errors: Iterable[FieldError]) -> list[FieldError]:
    """``errors`` safe to echo: each field and message valid UTF-8 and cut to its bound, at most
    :data:`MAX_FIELD_ERRORS` of them in :data:`MAX_ERRORS_BYTES`; the last kept item counts the
    rest (``$errors: … more``). Never empty when ``errors`` is not."""
    items = list(errors)
    kept: list[FieldError] = []
    size = 0
    room = MAX_FIELD_ERRORS if len(items) <= MAX_FIELD_ERRORS else MAX_FIELD_ERRORS - 1
    for error in items:
        one = FieldError(clean(error.field, MAX_FIELD_CHARS), clean(error.message, MAX_MESSAGE_CHARS))
        cost = len(one.field.encode()) + len(one.message.encode()) + 32
        if len(kept) >= room or size + cost > MAX_ERRORS_BYTES:
            break
        kept.append(one)
        size += cost
    if len(kept) < len(items):
        kept.append(FieldError("$errors", f"{len(items) - len(kept)} more error(s) not shown"))
    return kept
