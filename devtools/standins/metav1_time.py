"""Kubernetes timestamps as the API server writes them (metav1.Time, second precision; RFC3339Nano for
logs), shared by the API-server stand-in and the virtual node."""

from __future__ import annotations

from datetime import UTC, datetime


def now_rfc3339() -> str:
    """metav1.Time: second precision, UTC, ``Z`` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_of(epoch: float) -> str:
    """``epoch`` (seconds) as metav1.Time."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano_of(epoch: float) -> str:
    """``epoch`` (seconds) as metav1.MicroTime / a container log's timestamp prefix."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
