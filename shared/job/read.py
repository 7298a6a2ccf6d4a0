"""Readers of Job and pod objects (pure: Mappings in, values out) shared by every capability:
metadata, annotations, status, conditions, the completion index."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.base.conventions import COMPLETION_INDEX, JOB_TRACKING_FINALIZER

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


def index_set(text: str) -> set[int]:
    """Kubernetes' index list (``"1,3-5"``, as in ``status.completedIndexes``/``failedIndexes``) as a
    set; unreadable parts are skipped."""
    out: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            continue
    return out


_FINISHED_KIND = {"Succeeded": "succeeded", "Failed": "failed"}


def finished_pods(job: Obj, pods: Iterable[Obj] = ()) -> dict[str, int]:
    """Pods of the Job that ended, ``{"succeeded": n, "failed": n}``, counted once each.

    The counters plus the pods listed in ``status.uncountedTerminatedPods``, plus — given the Job's
    ``pods`` — those that ended but are in neither yet. The Job controller (kubernetes
    pkg/controller/job/job_controller.go) works in this order: ``syncJob`` counts, besides the
    counters and the uncounted uids, every finished pod that still has the
    ``batch.kubernetes.io/job-tracking`` finalizer and is not uncounted (``getNewFinishedPods`` →
    ``getValidPodsWithFilter``); ``trackJobStatusAndRemoveFinalizers`` then lists such pods' uids in
    ``uncountedTerminatedPods`` (for an Indexed Job a success goes straight into
    ``completedIndexes``/``succeeded`` instead), ``flushUncountedAndRemoveFinalizers`` writes that
    status, only then removes the finalizers, and ``cleanUncountedPodsWithoutFinalizers`` moves the
    uids without a finalizer into ``succeeded``/``failed``. So a finished pod with the finalizer and
    not uncounted (nor, Indexed, in ``completedIndexes``) is in no status field: for up to one sync
    (``syncJobBatchPeriod``, 1 s, or longer when the status update fails) after it ended. A pod
    without the finalizer is already in the counters or still uncounted, never in neither."""
    status = status_of(job)
    uncounted = status.get("uncountedTerminatedPods") or {}
    out = {k: int(status.get(k) or 0) + len(uncounted.get(k) or []) for k in ("succeeded", "failed")}
    listed = {k: {str(uid) for uid in uncounted.get(k) or []} for k in out}
    spec = job.get("spec") or {}
    indexed = spec.get("completionMode") == "Indexed"
    completions = int(spec.get("completions") or 1)
    done = index_set(str(status.get("completedIndexes") or ""))
    for pod in pods:
        kind = _FINISHED_KIND.get(str(status_of(pod).get("phase")))
        meta = metadata_of(pod)
        if kind is None or JOB_TRACKING_FINALIZER not in (meta.get("finalizers") or []):
            continue
        if str(meta.get("uid") or "") in listed[kind]:
            continue
        if indexed:
            # Indexed: a pod outside 0..completions-1 is never counted; a success counts its index
            # once (``calculateSucceededIndexes``), so a second pod of a done index adds nothing.
            index = pod_index(pod)
            if index is None or not 0 <= index < completions or (kind == "succeeded" and index in done):
                continue
            if kind == "succeeded":
                done.add(index)
        out[kind] += 1
    return out
