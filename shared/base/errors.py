"""Errors that say whether retrying can help (after kopf's PermanentError/TemporaryError).

The functions map them onto the host's semantics: a TransientError is raised out of the
function so the host retries the message (visibility timeout) and finally poisons it; a
PermanentError is answered with an event and the message completes.
"""

from __future__ import annotations

from dataclasses import dataclass


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
