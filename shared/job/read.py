"""Readers of Job and pod objects (pure: Mappings in, values out) shared by every capability:
metadata, annotations, status, conditions, the completion index."""

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


SUCCESS_CONDITIONS = ("SuccessCriteriaMet", "Complete")
FAILURE_CONDITIONS = ("FailureTarget", "Failed")


def terminal_condition(job: Obj) -> Obj | None:
    """The condition that says how the Job ended, or None while it runs.

    Kubernetes 1.31+ (``pkg/controller/job/job_controller.go``: ``newFailureCondition``,
    ``newSuccessCondition``, ``delayTerminalCondition``) first writes ``FailureTarget`` /
    ``SuccessCriteriaMet`` and adds ``Failed`` / ``Complete`` only in ``enactJobFinished``, once
    ``status.terminating`` is 0 — which on a virtual node whose virtual-kubelet is down never
    happens. The interim conditions are never retracted (``syncJob`` turns an existing
    ``FailureTarget`` into the finish condition), so they are final: returned first, and their
    ``lastTransitionTime`` is when the Job ended. Older clusters write only ``Complete`` /
    ``Failed``, returned then. Shape: the condition's dict (``type``, ``reason``, ``message``,
    ``lastTransitionTime``)."""
    for kind in (*FAILURE_CONDITIONS, *SUCCESS_CONDITIONS):
        found = condition_of(job, kind)
        if found is not None:
            return found
    return None


def is_success(condition: Obj) -> bool:
    """Whether a condition from :func:`terminal_condition` says the Job succeeded."""
    return condition.get("type") in SUCCESS_CONDITIONS


def is_deleting(job: Obj) -> bool:
    return bool(metadata_of(job).get("deletionTimestamp"))


def pod_index(pod: Obj) -> int | None:
    meta = metadata_of(pod)
    raw = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or (meta.get("labels") or {}).get(COMPLETION_INDEX)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def container_states(pod: Obj) -> list[Obj]:
    return [cs for cs in status_of(pod).get("containerStatuses") or [] if isinstance(cs, Mapping)]


def finished_pods(job: Obj) -> dict[str, int]:
    """Pods of the Job that ended, ``{"succeeded": n, "failed": n}``: the counters plus the pods
    listed in ``status.uncountedTerminatedPods``. The Job controller records a finished pod's uid
    there first, removes its ``batch.kubernetes.io/job-tracking`` finalizer, and only then moves
    it to ``succeeded``/``failed`` in a second status update; it counts both itself
    (kubernetes pkg/controller/job/job_controller.go ``syncJob``,
    ``flushUncountedAndRemoveFinalizers``)."""
    status = status_of(job)
    uncounted = status.get("uncountedTerminatedPods") or {}
    return {k: int(status.get(k) or 0) + len(uncounted.get(k) or []) for k in ("succeeded", "failed")}
