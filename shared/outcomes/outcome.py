"""A Job and its pods → how the request ended (pure: no I/O).

The reconciler reads a Job and its pods and asks this module three questions:

* is the Job done? Kubernetes says so with a ``Complete`` or ``Failed`` condition; those are
  final, so the outcome can be derived again, identically, on any later pass;
* if not, has the app to declare it failed? Its pod has been ``Pending`` longer than
  VNB_PENDING_TIMEOUT_SECONDS (ACI capacity, quota, image pull, unschedulable), or it was
  deleted by someone else before it finished (``Lost``). Those decisions are *not* final in
  Kubernetes' eyes (the pod may still start), so the reconciler writes them on the Job as a
  :class:`Verdict` annotation *before* sending the event: a repeated event after a crash is
  then the same event, not a second, different outcome;
* what goes in the event: timestamps, reason, exit code, per-index outcome, attempts, and
  which pods' log tails are worth reading.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from shared.base.conventions import (
    ANN_CORRELATION_ID,
    ANN_ENQUEUED_AT,
    ANN_KEY,
    ANN_MESSAGE_ID,
    ANN_RESOURCES,
    CONTAINER,
)
from shared.base.times import iso, parse_time
from shared.job.read import (
    annotations_of,
    container_states,
    finished_pods,
    is_success,
    job_name_of,
    metadata_of,
    pod_index,
    status_of,
    terminal_condition,
)
from shared.outcomes.provider_failure import ProviderFailure, classify
from shared.outcomes.verdicts import (
    MAX_MESSAGE_CHARS,
    NODE_DOWN,
    Verdict,
    sort_key,
    stranded_message,
    stranded_pods,
    vanished_failures,
    vanished_message,
)

Obj = Mapping[str, Any]


MAX_LOG_PODS: Final = 3
"""Log tails per event: the failed indexes first. More would crowd out the 64 KiB message."""

ACI_CONTAINER_ID: Final = "aci://"
"""azure-aci names every container ``aci://<sha256>`` (pkg/util/aci_utils.go GetContainerID)."""
_ACI_EXIT_REASONS: Final = frozenset({"Failed", "Canceled"})
"""The only ACI container states azure-aci copies an exit code from (pkg/provider/
containergroup_to_pod.go aciContainerStateToContainerState); ``Succeeded``/``Terminated`` become
reason ``Completed`` with ExitCode unset, i.e. the 0 of Go's zero value (azure-aci issue #417)."""
_ACI_SYNTHETIC_REASONS: Final = frozenset({"NotFound"})
"""azure-aci writes these itself when the container group is gone (exit code -137 or 0,
pkg/provider/podsTracker.go, aci.go DeletePod): not the container's exit."""
NOT_REPORTED: Final = "NotReportedByProvider"
NO_EXIT: Final = "NoContainerExited"


@dataclass(frozen=True)
class LogSource:
    """A pod whose log tail goes into the event (read before the Job and pods are deleted)."""

    pod: str
    container: str
    index: int | None
    on_aci: bool = False
    """The container ran on ACI (``aci://`` id): its log lines carry ACI's timestamps (shared.job.logs)."""


@dataclass(frozen=True)
class ExitCodeGap:
    """Why an event's ``exitCode`` is null: ``NotReportedByProvider`` or ``NoContainerExited``."""

    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message}


@dataclass(frozen=True)
class Outcome:
    """How a Job ended, everything the event says except the log text."""

    succeeded: bool
    reason: str
    message: str
    finished_at: datetime
    started_at: datetime | None
    exit_code: int | None
    attempts: Mapping[str, int]
    indexes: Mapping[str, Any] | None
    log_sources: tuple[LogSource, ...] = field(default=())
    exit_code_gap: ExitCodeGap | None = None
    provider_failure: ProviderFailure | None = None

    @property
    def label(self) -> str:
        return "succeeded" if self.succeeded else "failed"


@dataclass(frozen=True)
class LogTail:
    pod: str
    container: str
    index: int | None
    text: str
    truncated: bool
    unavailable: str | None = None
    """Why the log could not be read (the API's error, e.g. a 500 from a virtual node that is
    down or an ARM throttle azure-aci passed through); ``text`` is empty then."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pod": self.pod,
            "container": self.container,
            "index": self.index,
            "text": self.text,
            "truncated": self.truncated,
        }
        if self.unavailable is not None:
            out["unavailable"] = self.unavailable
        return out


# --- reading Kubernetes objects ------------------------------------------------------------


def _terminated(pod: Obj) -> list[Obj]:
    out: list[Obj] = []
    for cs in container_states(pod):
        term = (cs.get("state") or {}).get("terminated")
        if term:
            # azure-aci sets the ContainerStatus' containerID, not the terminated state's.
            cid = term.get("containerID") or cs.get("containerID") or ""
            out.append({"container": cs.get("name") or CONTAINER, **term, "containerID": cid})
    return out


def reported_exit_code(term: Obj) -> int | None:
    """The exit code of a terminated container state, or None where the provider gave none.

    A kubelet's container runtime always reports the code. azure-aci (container IDs
    ``aci://…``) reports it only for ACI states Failed/Canceled; for Succeeded/Terminated the
    status says ``exitCode: 0`` because the field was never set, and ``NotFound`` states are
    made up when the container group disappeared. A non-zero code is always a real one.
    """
    code = term.get("exitCode")
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    if not str(term.get("containerID") or "").startswith(ACI_CONTAINER_ID):
        return code
    reason = term.get("reason")
    if reason in _ACI_EXIT_REASONS:
        return code
    if reason in _ACI_SYNTHETIC_REASONS:
        return None
    return code if code != 0 else None


def _ran(pod: Obj) -> bool:
    """A container of this pod started, so it may have a log."""
    return any(
        (cs.get("state") or {}).get("running") or (cs.get("state") or {}).get("terminated")
        for cs in container_states(pod)
    )


# --- which Jobs need work -------------------------------------------------------------------


# --- the outcome ----------------------------------------------------------------------------


def outcome(job: Obj, pods: Sequence[Obj], *, verdict: Verdict | None, now: datetime) -> Outcome:
    """The outcome of a finished Job (terminal condition) or of one the app judged (verdict)."""
    status = status_of(job)
    attempts = finished_pods(job)
    indexes = _indexes(job)
    started = _started_at(job, pods)
    if verdict is not None:
        code, gap = _exit_code(pods, failed=True)
        return Outcome(
            succeeded=False,
            reason=verdict.reason,
            message=verdict.message,
            finished_at=verdict.at,
            started_at=started,
            exit_code=code,
            attempts=attempts,
            indexes=indexes,
            log_sources=_log_sources(pods, failed=True),
            exit_code_gap=gap,
            provider_failure=(
                _provider_failure(pods, verdict.message)
                if verdict.reason in (PROVIDER_FAILED, CAPACITY_EXHAUSTED)
                else None
            ),
        )
    cond = terminal_condition(job)
    if cond is None:
        raise ValueError(f"Job {job_name_of(job)} has not finished and has no verdict: nothing to report")
    # SuccessCriteriaMet / FailureTarget were written when the Job ended; Complete's
    # completionTime (older clusters) is the same moment (job_controller.go enactJobFinished).
    finished = (parse_time(status.get("completionTime")) if cond["type"] == "Complete" else None) or parse_time(
        cond.get("lastTransitionTime")
    )
    finished = finished or _last_finish(pods) or now
    if is_success(cond):
        code, gap = _exit_code(pods, failed=False)
        return Outcome(
            succeeded=True,
            reason="Completed",
            message=str(cond.get("message") or "the Job completed"),
            finished_at=finished,
            started_at=started,
            exit_code=code,
            attempts=attempts,
            indexes=indexes,
            log_sources=_log_sources(pods, failed=False),
            exit_code_gap=gap,
        )
    reason = str(cond.get("reason") or "Failed")
    message = str(cond.get("message") or "the Job failed")
    exit_code, gap = _exit_code(pods, failed=True)
    last = _last_failed_pod(pods)
    if last is not None:
        pod_reason = status_of(last).get("reason")
        name = metadata_of(last).get("name")
        index = pod_index(last)
        where = f"pod {name}" + (f" (index {index})" if index is not None else "")
        if not _terminated(last) and pod_reason and reason == "BackoffLimitExceeded":
            # The container never ran: the provider's reason (ACI's ProviderFailed) is the cause.
            reason = str(pod_reason)
            message = f"{message}; {where}: {pod_reason}: {status_of(last).get('message') or ''}".rstrip(": ")
        elif exit_code is not None:
            message = f"{message}; last failed {where} exited with code {exit_code}"
        elif gap is not None and gap.reason == NOT_REPORTED:
            message = f"{message}; last failed {where}: the virtual node did not report its exit code"
        elif pod_reason:
            message = f"{message}; {where}: {pod_reason}"
    if indexes and indexes.get("failed"):
        message = f"{message}; failed indexes: {indexes['failed']}"
    # The virtual node failed the Job, whether its evicted pods are still stranded (virtual-kubelet
    # down) or already removed (it came back before this report): one reason either way.
    stranded, vanished = stranded_pods(pods), vanished_failures(job, pods)
    if stranded or vanished:
        said = stranded_message(stranded) if stranded else vanished_message(vanished)
        reason, message = NODE_DOWN, f"{said}; Kubernetes says {reason}: {message}"
    return Outcome(
        succeeded=False,
        reason=reason,
        message=message[:MAX_MESSAGE_CHARS],
        finished_at=finished,
        started_at=started,
        exit_code=exit_code,
        attempts=attempts,
        indexes=indexes,
        log_sources=_log_sources(pods, failed=True),
        exit_code_gap=gap,
        provider_failure=_provider_failure(pods, message) if reason == PROVIDER_FAILED else None,
    )


def _indexes(job: Obj) -> dict[str, Any] | None:
    spec = job.get("spec") or {}
    if spec.get("completionMode") != "Indexed":
        return None
    status = status_of(job)
    return {
        "completions": int(spec.get("completions") or 0),
        "succeeded": str(status.get("completedIndexes") or ""),
        "failed": str(status.get("failedIndexes") or ""),
    }


def _started_at(job: Obj, pods: Iterable[Obj]) -> datetime | None:
    """When the first container started: on ACI that includes the 20-110 s container-group
    start, which is what a producer waits for. Falls back to the Job's status.startTime."""
    starts: list[datetime] = []
    for pod in pods:
        for cs in container_states(pod):
            state = cs.get("state") or {}
            moment = parse_time((state.get("running") or state.get("terminated") or {}).get("startedAt"))
            if moment is not None:
                starts.append(moment)
    if starts:
        return min(starts)
    return parse_time(status_of(job).get("startTime"))


def _last_finish(pods: Iterable[Obj]) -> datetime | None:
    ends = [parse_time(t.get("finishedAt")) for pod in pods for t in _terminated(pod)]
    found = [e for e in ends if e is not None]
    return max(found) if found else None


def _exit_code(pods: Iterable[Obj], *, failed: bool) -> tuple[int | None, ExitCodeGap | None]:
    """Exit code of the last terminated container (for a failure, of the last one that failed),
    or None and why: the provider did not report it, or no container ran to an exit."""
    best: tuple[datetime, int] | None = None
    silent: tuple[datetime, str, str] | None = None
    for pod in pods:
        if failed and status_of(pod).get("phase") == "Succeeded":
            continue
        for term in _terminated(pod):
            code = reported_exit_code(term)
            moment = sort_key(parse_time(term.get("finishedAt")))
            if code is None:
                if silent is None or moment >= silent[0]:
                    silent = (moment, str(metadata_of(pod).get("name") or ""), str(term["container"]))
                continue
            if failed and code == 0:
                continue
            if best is None or moment >= best[0]:
                best = (moment, code)
    if best is not None:
        return best[1], None
    if silent is not None:
        return None, ExitCodeGap(
            NOT_REPORTED,
            f"the virtual node did not report the exit code of pod {silent[1]} container {silent[2]}: azure-aci "
            "gives one only for ACI's Failed/Canceled states (virtual-kubelet/azure-aci issue #417)",
        )
    return None, ExitCodeGap(
        NO_EXIT,
        "no container ran to an exit (it never started, or was stopped first: provider failure, image pull, "
        "pending, deadline, deletion)",
    )


PROVIDER_FAILED: Final = "ProviderFailed"
CAPACITY_EXHAUSTED: Final = "CapacityExhausted"
"""Reason of a Job ACI refused for capacity on every attempt (issue 11): its event carries ACI's
error in ``providerFailure`` like ``ProviderFailed``."""


def _provider_failure(pods: Iterable[Obj], fallback: str) -> ProviderFailure:
    """ACI's error from the latest pod the virtual node failed (its status.message), classified."""
    failed = [p for p in pods if status_of(p).get("reason") == PROVIDER_FAILED and status_of(p).get("message")]
    if failed:
        latest = max(failed, key=lambda p: sort_key(parse_time(metadata_of(p).get("creationTimestamp"))))
        found = classify(str(status_of(latest)["message"]))
    else:
        found = classify(fallback)
    return replace(found, message=found.message[:MAX_MESSAGE_CHARS])


def _finished_key(pod: Obj) -> datetime:
    ends = [parse_time(t.get("finishedAt")) for t in _terminated(pod)]
    found = [e for e in ends if e is not None]
    return max(found) if found else sort_key(parse_time(metadata_of(pod).get("creationTimestamp")))


def _last_failed_pod(pods: Iterable[Obj]) -> Obj | None:
    failed = [p for p in pods if status_of(p).get("phase") == "Failed"]
    return max(failed, key=_finished_key) if failed else None


def _log_sources(pods: Sequence[Obj], *, failed: bool) -> tuple[LogSource, ...]:
    """Which pods' logs to read: for a failure, the failed pods (one per index, latest first),
    then any other pod that ran; for a success, the last pod that succeeded."""
    ran = [p for p in pods if _ran(p) and (metadata_of(p).get("name"))]
    wanted = "Failed" if failed else "Succeeded"
    first = sorted((p for p in ran if status_of(p).get("phase") == wanted), key=_finished_key, reverse=True)
    rest = sorted((p for p in ran if status_of(p).get("phase") != wanted), key=_finished_key, reverse=True)
    limit = MAX_LOG_PODS if failed else 1
    chosen: list[LogSource] = []
    seen_index: set[int | None] = set()
    for pod in [*first, *rest]:
        index = pod_index(pod)
        if index is not None and index in seen_index:
            continue  # an earlier attempt of an index already chosen: its latest attempt says more
        seen_index.add(index)
        status = next((cs for cs in container_states(pod) if cs.get("name")), {})
        container = str(status.get("name") or CONTAINER)
        on_aci = str(status.get("containerID") or "").startswith(ACI_CONTAINER_ID)
        chosen.append(LogSource(pod=str(metadata_of(pod)["name"]), container=container, index=index, on_aci=on_aci))
        if len(chosen) >= limit:
            break
    return tuple(chosen)


def cut_tail(text: str, limit_bytes: int) -> tuple[str, bool]:
    """The last ``limit_bytes`` bytes of ``text`` (on a character boundary) and whether it was cut.

    The API's ``limitBytes`` keeps the *start* of what it returns; the end of a log is where
    the error is, so the reconciler asks for more and keeps the end here.
    """
    raw = text.encode()
    if len(raw) <= limit_bytes:
        return text, False
    kept = raw[len(raw) - limit_bytes :].decode("utf-8", errors="ignore")
    newline = kept.find("\n")
    if 0 <= newline < len(kept) - 1:
        kept = kept[newline + 1 :]  # start on a whole line
    return kept, True


# --- the event's data -----------------------------------------------------------------------


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max((end - start).total_seconds(), 0.0), 3)


def event_data(job: Obj, result: Outcome, logs: Sequence[LogTail]) -> dict[str, Any]:
    """The ``data`` of a job.succeeded / job.failed event (see docs/events.md)."""
    meta, ann = metadata_of(job), annotations_of(job)
    enqueued = parse_time(ann.get(ANN_ENQUEUED_AT))
    created = parse_time(meta.get("creationTimestamp"))
    started = result.started_at
    return {
        "requestKey": ann.get(ANN_KEY),
        "jobName": meta.get("name"),
        "namespace": meta.get("namespace"),
        "jobUid": meta.get("uid"),
        "correlationId": ann.get(ANN_CORRELATION_ID),
        "messageId": ann.get(ANN_MESSAGE_ID),
        "enqueuedAt": iso(enqueued) if enqueued else None,
        "createdAt": iso(created) if created else None,
        "startedAt": iso(started) if started else None,
        "finishedAt": iso(result.finished_at),
        "durationSeconds": _seconds(started, result.finished_at),
        "queueToStartSeconds": _seconds(enqueued, started),
        "outcome": result.label,
        "reason": result.reason,
        "message": result.message,
        "exitCode": result.exit_code,
        "exitCodeUnavailable": result.exit_code_gap.as_dict() if result.exit_code_gap else None,
        "providerFailure": result.provider_failure.as_dict() if result.provider_failure else None,
        "resources": _resources(ann.get(ANN_RESOURCES)),
        "indexes": dict(result.indexes) if result.indexes is not None else None,
        "attempts": dict(result.attempts),
        "logTail": [t.as_dict() for t in logs],
    }


def _resources(text: object) -> dict[str, Any] | None:
    """The requested-vs-applied CPU and memory build_job recorded on the Job (None if absent)."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
