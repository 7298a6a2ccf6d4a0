"""metav1.Time as kube-apiserver writes it (RFC 3339, UTC, ``Z``), shared by the Kubernetes
stand-in and the virtual node (which must not import each other: import-linter's acyclic
contract)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_rfc3339() -> str:
    """metav1.Time: second precision, UTC, ``Z`` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano_of(epoch: float) -> str:
    """metav1.MicroTime / log timestamps: nanosecond field width, microsecond precision."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
