"""Timestamps as Kubernetes writes them (apimachinery ``metav1.Time``: RFC 3339, UTC, ``Z``), shared by
the kube stand-in and the virtual node, which must not import each other (import-linter's
acyclic-siblings contract)."""

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
