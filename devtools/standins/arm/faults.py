"""Faults the ARM stand-in injects (test hooks, no platform part): throttling with ARM's 429
``SubscriptionRequestsThrottled`` body and headers, and other failures by status."""

from __future__ import annotations

import re
from dataclasses import dataclass

from devtools.standins.arm.catalog import (
    ArmError,
)
from devtools.standins.arm.common import (
    _WRITE_METHODS,
)
from devtools.standins.arm.identity import (
    Principal,
)


@dataclass
class _Fault:
    kind: str
    remaining: int
    status: int
    retry_after: float
    regex: re.Pattern[str] | None
    method: str | None
    probability: float
    code: str | None
    message: str | None


class FaultInjection:
    """``throttle``/``fail``: the next matching requests are refused before they reach a provider."""

    def throttle(self, count: int, retry_after_seconds: float = 1, path_regex: str | None = None) -> None:
        """The next ``count`` matching ARM requests get 429 + Retry-After (SubscriptionRequestsThrottled)."""
        self._add_fault("throttle", count, 429, retry_after_seconds, path_regex, None, 1.0, None, None)

    def fail(
        self,
        count: int,
        status: int = 500,
        path_regex: str | None = None,
        method: str | None = None,
        *,
        probability: float = 1.0,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """The next ``count`` matching ARM requests fail with ``status`` (seeded ``probability``)."""
        self._add_fault("fail", count, status, 0, path_regex, method, probability, code, message)

    def _add_fault(
        self,
        kind: str,
        count: int,
        status: int,
        retry_after: float,
        path_regex: str | None,
        method: str | None,
        probability: float,
        code: str | None,
        message: str | None,
    ) -> None:
        rx = re.compile(path_regex, re.IGNORECASE) if path_regex else None
        with self._lock:
            self._faults.append(
                _Fault(
                    kind, count, status, retry_after, rx, method.upper() if method else None, probability, code, message
                )
            )

    def _maybe_fault(self, method: str, path: str, principal: Principal) -> None:
        with self._lock:
            for f in self._faults:
                if f.remaining <= 0 or (f.method and f.method != method) or (f.regex and not f.regex.search(path)):
                    continue
                if f.probability < 1.0 and self._rand.random() >= f.probability:
                    continue
                f.remaining -= 1
                if f.kind == "throttle":
                    ra = f.retry_after
                    ra_text = str(int(ra)) if float(ra).is_integer() else str(ra)
                    kind = "write" if method in _WRITE_METHODS else "read"
                    raise ArmError(
                        429,
                        f.code or "SubscriptionRequestsThrottled",
                        f.message
                        or f"Number of '{kind}' requests for subscription '{self.subscription_id}' actor "
                        f"'{principal.object_id}' exceeded. Please try again after '{ra_text}' seconds after "
                        "additional tokens are available. Refer to https://aka.ms/arm-throttling",
                        {"Retry-After": ra_text, f"x-ms-ratelimit-remaining-subscription-{kind}s": "0"},
                    )
                codes = {
                    500: "InternalServerError",
                    502: "BadGateway",
                    503: "ServiceUnavailable",
                    504: "GatewayTimeout",
                }
                raise ArmError(
                    f.status,
                    f.code or codes.get(f.status, "InjectedFault"),
                    f.message or f"Injected fault ({f.status}) from the ARM stand-in.",
                )
