"""Which Jobs need a decision the Job controller will not make: stuck Pending, lost, stranded
on a virtual node that is down (pure: the reconciler's verdicts)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from shared.base.conventions import ANN_VERDICT
from shared.base.times import iso, parse_time
from shared.job.read import (
    annotations_of,
    container_states,
    finished_pods,
    is_deleting,
    metadata_of,
    pod_index,
    status_of,
    terminal_condition,
)

Obj = Mapping[str, Any]


# Waiting reasons that name the cause better than "it timed out": the event's reason says them.
_WAITING_CAUSES: Final = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ProviderFailed", "CreateContainerConfigError"}
)


@dataclass(frozen=True)
class Verdict:
    """A failure the app decided for a Job that Kubernetes still thinks is alive."""

    reason: str
    message: str
    at: datetime

    def annotation(self) -> str:
        return json.dumps({"reason": self.reason, "message": self.message, "at": iso(self.at)}, separators=(",", ":"))

    @classmethod
    def of(cls, job: Obj) -> Verdict | None:
        text = annotations_of(job).get(ANN_VERDICT)
        if not text:
            return None
        try:
            raw = json.loads(text)
            return cls(reason=str(raw["reason"]), message=str(raw["message"]), at=parse_time(str(raw["at"])) or _EPOCH)
        except (ValueError, KeyError, TypeError):
            return None  # a hand-edited annotation: ignore it, derive the outcome again


def needs_pods(job: Obj, *, now: datetime, pending_timeout: int) -> bool:
    """Whether this pass must look at the Job's pods (list them) at all.

    Most unreported Jobs are simply running; listing their pods every pass would make the
    reconciler's cost grow with the running Jobs. Only finished, deleted, already-judged
    Jobs, and Jobs old enough to be stuck whose pods are not all ready, are looked at.
    """
    if terminal_condition(job) or is_deleting(job) or Verdict.of(job):
        return True
    created = parse_time(metadata_of(job).get("creationTimestamp"))
    if created is None or (now - created).total_seconds() < pending_timeout:
        return False
    status = status_of(job)
    active, ready = int(status.get("active") or 0), int(status.get("ready") or 0)
    return active == 0 or ready < active


def stuck_verdict(job: Obj, pods: Sequence[Obj], *, now: datetime, pending_timeout: int) -> Verdict | None:
    """A failure verdict if a pod of this Job has been Pending longer than the timeout.

    The reason is the pod's own when it names the cause (ErrImagePull, ImagePullBackOff,
    ProviderFailed, …), else ``PendingTimeout``; the message carries the scheduler's or the
    provider's explanation (e.g. "0/2 nodes are available", "insufficient capacity").
    """
    created = parse_time(metadata_of(job).get("creationTimestamp"))
    if created is None or (now - created).total_seconds() < pending_timeout:
        return None
    if not pods:
        if terminal_condition(job) or not _never_had_pods(job):
            # Pods existed and are gone (a deadline kill between the last pod's removal and the
            # controller's next sync, batched by syncJobBatchPeriod): the Job's conditions say
            # how it ended on the next pass; "no pod was created" would be wrong.
            return None
        age = int((now - created).total_seconds())
        return Verdict(
            reason="PendingTimeout",
            message=f"no pod was created for the Job in {age} s (VNB_PENDING_TIMEOUT_SECONDS={pending_timeout}): "
            "a ResourceQuota, LimitRange or admission policy may refuse its pods; see the Job's events",
            at=now,
        )
    for pod in sorted(pods, key=lambda p: sort_key(parse_time(metadata_of(p).get("creationTimestamp")))):
        if status_of(pod).get("phase") != "Pending" or metadata_of(pod).get("deletionTimestamp"):
            continue
        since = parse_time(metadata_of(pod).get("creationTimestamp"))
        if since is None or (now - since).total_seconds() < pending_timeout:
            continue
        reason, detail = _pending_cause(pod)
        index = pod_index(pod)
        where = f"pod {metadata_of(pod).get('name')}" + (f" (index {index})" if index is not None else "")
        age = int((now - since).total_seconds())
        message = f"{where} was Pending for {age} s (VNB_PENDING_TIMEOUT_SECONDS={pending_timeout}): {detail}"
        stranded = stranded_pods(pods)
        if stranded:  # the replacement of an evicted pod cannot be scheduled on the tainted node
            reason, message = NODE_DOWN, f"{stranded_message(stranded)}; {message}"
        return Verdict(reason=reason, message=message[:MAX_MESSAGE_CHARS], at=now)
    return None


def _never_had_pods(job: Obj) -> bool:
    """No pod of this Job ever existed as far as its status tells: none active, terminating,
    counted (``succeeded``/``failed``) or waiting to be counted (``uncountedTerminatedPods``,
    job_controller.go trackJobStatusAndRemoveFinalizers)."""
    status = status_of(job)
    return not any(int(status.get(k) or 0) for k in ("active", "terminating")) and not any(finished_pods(job).values())


NODE_DOWN: Final = "VirtualNodeDown"
"""Reason of a Job whose pods the node lifecycle controller evicted from a virtual node that
stopped reporting (virtual-kubelet down): they stay Terminating until it is back."""


_EVICTED: Final = ("DisruptionTarget", "DeletionByTaintManager")
"""The pod condition the taint-eviction controller adds before it deletes a pod for a NoExecute
taint it no longer tolerates (kubernetes pkg/controller/tainteviction/taint_eviction.go
addConditionAndDeletePod; the default toleration of node.kubernetes.io/unreachable is 300 s)."""


def stranded_pods(pods: Sequence[Obj]) -> list[Obj]:
    """Pods evicted by the taint manager and not finished: on the virtual node nothing confirms
    their deletion until virtual-kubelet is back (it deletes the container group, then the pod)."""
    out = []
    for pod in pods:
        if status_of(pod).get("phase") in ("Succeeded", "Failed") or not metadata_of(pod).get("deletionTimestamp"):
            continue
        for cond in status_of(pod).get("conditions") or []:
            if (cond.get("type"), cond.get("reason")) == _EVICTED and cond.get("status") == "True":
                out.append(pod)
                break
    return out


_COUNTED_FAILURES: Final = frozenset({"BackoffLimitExceeded", "FailedIndexes"})
"""Failure reasons the Job controller derives from the pods it counted failed before deciding
(job_controller.go ``syncJob``); after the decision it deletes the active pods itself."""


def vanished_failures(job: Obj, pods: Sequence[Obj]) -> int:
    """How many of the failures that made a Job fail were pods deleted before they finished
    (``isPodFailed``: a deletionTimestamp without Succeeded counts as a failure) and now gone.

    A pod that fails by itself stays, in phase Failed, until the app deletes it after the
    report; a pod deleted while running is gone once its node confirmed. Before a
    BackoffLimitExceeded / FailedIndexes decision the controller deletes no pod, so such a gap
    means something else deleted running pods: on the virtual node, the taint manager evicting
    them after virtual-kubelet stopped reporting (and virtual-kubelet removing them once back),
    or PodGC when the node was removed — or a person. 0 for other reasons (a deadline, where the
    controller deletes the pods after deciding)."""
    cond = next((c for c in status_of(job).get("conditions") or [] if c.get("type") == "FailureTarget"), None)
    cond = cond or next((c for c in status_of(job).get("conditions") or [] if c.get("type") == "Failed"), None)
    if cond is None or cond.get("reason") not in _COUNTED_FAILURES:
        return 0
    seen = sum(
        1
        for p in pods
        if status_of(p).get("phase") == "Failed"
        or (metadata_of(p).get("deletionTimestamp") and status_of(p).get("phase") != "Succeeded")
    )
    return max(0, finished_pods(job)["failed"] - seen)


def vanished_message(count: int) -> str:
    return (
        f"{count} pod(s) of this Job were deleted before they finished and are gone (none failed by itself): on "
        "the virtual node the taint manager evicts running pods once virtual-kubelet has stopped reporting for the "
        "300 s NoExecute toleration, and virtual-kubelet deletes them and their container groups when it is back "
        "(or the node was removed, or someone deleted them); the work's own end is unknown"
    )


def stranded_message(stranded: Sequence[Obj]) -> str:
    names = ", ".join(str(metadata_of(p).get("name")) for p in stranded[:3])
    more = f" and {len(stranded) - 3} more" if len(stranded) > 3 else ""
    return (
        f"the virtual node stopped reporting (virtual-kubelet down): pod(s) {names}{more} were evicted after the "
        "300 s NoExecute toleration and stay Terminating until virtual-kubelet is back and deletes their container "
        "groups; the work's own end is unknown"
    )


def _pending_cause(pod: Obj) -> tuple[str, str]:
    status = status_of(pod)
    if status.get("reason") in _WAITING_CAUSES:
        return str(status["reason"]), f"{status['reason']}: {status.get('message') or ''}".strip()
    for cs in container_states(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in _WAITING_CAUSES:
            return str(reason), f"{reason}: {waiting.get('message') or status.get('message') or ''}".strip()
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return "PendingTimeout", f"{cond.get('reason') or 'Unschedulable'}: {cond.get('message') or ''}".strip()
    for cs in container_states(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return "PendingTimeout", f"{waiting['reason']}: {waiting.get('message') or status.get('message') or ''}"
    if status.get("message"):
        return "PendingTimeout", str(status["message"])
    return "PendingTimeout", "the pod never started (no reason reported)"


def lost_verdict(job: Obj, *, now: datetime) -> Verdict:
    """The Job was deleted by someone else before it finished (the finalizer kept it visible)."""
    deleted = metadata_of(job).get("deletionTimestamp")
    return Verdict(
        reason="Lost",
        message=f"the Job was deleted at {deleted} before it finished, not by vnode-batch (kubectl, a namespace "
        "cleanup, or another controller); Kubernetes kept running its pods until this report, then vnode-batch "
        "deleted them: its work may be incomplete",
        at=now,
    )


MAX_MESSAGE_CHARS: Final = 2000
"""Reasons and messages in events are cut to this many characters."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sort_key(moment: datetime | None) -> datetime:
    return moment or _EPOCH
