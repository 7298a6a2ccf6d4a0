"""TODO docstring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.base.conventions import COMPLETION_INDEX

Obj = Mapping[str, Any]


def metadata_of(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def annotations_of(obj: Obj) -> Obj:
    return metadata_of(obj).get("annotations") or {}


def status_of(obj: Obj) -> Obj:
    return obj.get("status") or {}


def job_uid(job: Obj) -> str:
    return str(metadata_of(job).get("uid") or "")


def job_name_of(job: Obj) -> str:
    return str(metadata_of(job).get("name") or "")


def condition_of(job: Obj, kind: str) -> Obj | None:
    for c in status_of(job).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return dict(c)
    return None


def terminal_condition(job: Obj) -> Obj | None:
    """``Complete`` or ``Failed`` (final). ``SuccessCriteriaMet``/``FailureTarget`` come first in
    Kubernetes 1.31+, while pods are still being terminated: not yet final, so not here."""
    return condition_of(job, "Complete") or condition_of(job, "Failed")


def is_deleting(job: Obj) -> bool:
    return bool(metadata_of(job).get("deletionTimestamp"))


def pod_index(pod: Obj) -> int | None:
    meta = metadata_of(pod)
    raw = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or (meta.get("labels") or {}).get(COMPLETION_INDEX)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None
