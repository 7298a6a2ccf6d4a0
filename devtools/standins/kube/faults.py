"""What the stand-in does to requests besides answering them (no platform part: test hooks): injected
errors, dropped connections and slow answers, with the Status bodies kube-apiserver sends for them,
and the request log and counts the tests and benchmarks read."""

from __future__ import annotations

import collections
import random
import re
import threading
from dataclasses import dataclass

from devtools.standins.kube.objects import (
    ApiError,
)


@dataclass
class _FailRule:
    method: str | None
    path: re.Pattern[str] | None
    status: int
    remaining: int | None
    drop: bool
    after: bool


@dataclass
class _Rates:
    error_rate: float
    error_status: int
    slow_rate: float
    slow_seconds: float
    drop_rate: float
    path: re.Pattern[str] | None
    rng: random.Random
    after: bool


@dataclass
class _Fault:
    status: int = 0  # 0 = no error response
    drop: bool = False
    slow: float = 0.0
    after: bool = False


def _injected_error(status: int) -> ApiError:
    if status == 429:
        return ApiError(
            429,
            "Too many requests, please try again later.",
            details={"causes": [{"reason": "ServerBusy"}], "retryAfterSeconds": 1},
            headers={"Retry-After": "1"},
        )
    if status == 503:
        return ApiError(
            503, "the server is currently unable to handle the request (injected by the stand-in)", details={}
        )
    if status == 504:
        return ApiError(504, "Timeout: request did not complete within the allotted timeout", details={})
    if status == 401:
        return ApiError(401, "Unauthorized")
    return ApiError(
        status,
        f"Internal error occurred: injected fault (HTTP {status})"
        if status >= 500
        else f"injected fault (HTTP {status})",
        details={},
    )


class FaultInjection:
    """``fail_requests``/``set_fault_rates``: what goes wrong for the next matching requests."""

    _faults_lock: threading.Lock
    _fail_rules: list[_FailRule]
    _rates: _Rates | None

    def fail_requests(
        self,
        *,
        method: str | None = None,
        path_regex: str | None = None,
        status: int = 500,
        count: int | None = None,
        drop: bool = False,
        after: bool = False,
    ) -> None:
        """The next ``count`` matching requests (None = all) get a Status with ``status``.
        ``drop=True`` closes the connection without a response instead; ``after=True`` lets the
        request take effect first (a create that succeeded but whose answer was lost)."""
        rule = _FailRule(
            method.upper() if method else None,
            re.compile(path_regex) if path_regex else None,
            status,
            count,
            drop,
            after,
        )
        with self._faults_lock:
            self._fail_rules.append(rule)

    def set_fault_rates(
        self,
        *,
        error_rate: float = 0.0,
        error_status: int = 500,
        slow_rate: float = 0.0,
        slow_seconds: float = 0.5,
        drop_rate: float = 0.0,
        seed: int = 0,
        path_regex: str | None = None,
        after: bool = False,
    ) -> None:
        with self._faults_lock:
            self._rates = _Rates(
                error_rate,
                error_status,
                slow_rate,
                slow_seconds,
                drop_rate,
                re.compile(path_regex) if path_regex else None,
                random.Random(seed),
                after,
            )

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._fail_rules.clear()
            self._rates = None

    def _fault_for(self, method: str, path: str) -> _Fault:
        with self._faults_lock:
            for rule in self._fail_rules:
                if rule.remaining == 0:
                    continue
                if rule.method and rule.method != method:
                    continue
                if rule.path and not rule.path.search(path):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                return _Fault(status=0 if rule.drop else rule.status, drop=rule.drop, after=rule.after)
            r = self._rates
            if r is None or (r.path is not None and not r.path.search(path)):
                return _Fault()
            drop, err, slow = r.rng.random(), r.rng.random(), r.rng.random()
            return _Fault(
                status=r.error_status if err < r.error_rate else 0,
                drop=drop < r.drop_rate,
                slow=r.slow_seconds if slow < r.slow_rate else 0.0,
                after=r.after,
            )


class RequestMetrics:
    """The request log, per-route counts and ``Audit-Id`` values."""

    _metrics_lock: threading.Lock
    request_log: list[tuple[str, str, str]]
    _counts: collections.Counter[tuple[str, str]]
    _audit: int

    def _record(self, method: str, path: str, query: str, template: str) -> None:
        with self._metrics_lock:
            self.request_log.append((method, path, query))
            self._counts[(method, template)] += 1

    def _audit_id(self) -> str:
        with self._metrics_lock:
            self._audit += 1
            return f"00000000-0000-4000-8000-{self._audit:012d}"

    def request_counts(self) -> collections.Counter[tuple[str, str]]:
        with self._metrics_lock:
            return collections.Counter(self._counts)

    def reset_metrics(self) -> None:
        with self._metrics_lock:
            self.request_log.clear()
            self._counts.clear()
