"""ACI capacity: what a Job will take, what the app holds, and whether one more fits (pure).

ACI's quotas are per subscription and region (Microsoft docs, "Resource availability & quota
limits for ACI", learn.microsoft.com/azure/container-instances/container-instances-resource-and-quota-limits):
standard container groups (default 100), standard cores (default 100), and container-group
creates (default 100 per 5 minutes, 300 per hour). On the AKS virtual node one pod is one
container group (virtual-kubelet/azure-aci ``pkg/provider/aci.go CreatePod``), and the node
advertises thousands of pods, so Kubernetes never pushes back: a pod over quota ends
``ProviderFailed``. This module lets the dispatcher count before it creates.

Units: groups and creates are counts, cores are vCPU as ``Decimal`` *after ACI's rounding*
(azure-aci ``getContainers`` floors the CPU request to 0.01 vCPU: ``MilliValue()/10/100``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Final

from shared.base.conventions import ANN_CAPACITY_ATTEMPT, ANN_REQUEST, ANN_REQUEUED, CONTAINER, CONTROLLER_UID
from shared.base.quantity import parse_cpu
from shared.base.times import parse_time
from shared.job.read import (
    finished_pods,
    index_set,
    is_success,
    metadata_of,
    pod_index,
    status_of,
    terminal_condition,
)
from shared.outcomes.provider_failure import classify
from shared.secrets.scrub import env_restored, without_env_values

Obj = Mapping[str, Any]

_CENTI: Final = Decimal("0.01")
CREATE_LAG_SECONDS: Final = 9.0
"""The most ACI's count of a create may trail its Job's ``creationTimestamp`` (Job controller,
scheduler, virtual kubelet, ARM); see :func:`lag_allowance`."""


def lag_allowance(windows: tuple[int, int]) -> timedelta:
    """How much longer than ACI's each create window is counted: the lag, once per window.

    A create counted at ``c`` (its Job's ``creationTimestamp``, end of that second) is counted by
    ACI at ``a <= c + lag``; a new create admitted at ``now`` is counted at ``a' >= now``; ACI
    holds the old one at ``a'`` only if ``a > a' - window``. So counting every ``c > now - window
    - lag`` never admits a create ACI would refuse (tests/unit/capacity/test_windows.py). The lag
    is a time, not a share of the window (3 % before: 108 s on the hour, paid each hourly cycle).
    Scaled with the 5-minute window for time-scaled runs (bench/capacity.py)."""
    return timedelta(seconds=CREATE_LAG_SECONDS * windows[0] / 300)


def aci_cores(cpu: str | int | float | Decimal) -> Decimal:
    """vCPU that ACI receives for a CPU request: floored to 0.01 (azure-aci ``getContainers``)."""
    return parse_cpu(cpu).quantize(_CENTI, rounding=ROUND_FLOOR)


@dataclass(frozen=True)
class Demand:
    """What one Job takes from the budget when it is admitted.

    ``groups``/``cores``: its pods running at once (``min(parallelism, completions)`` of them);
    ``creates``: container groups it creates at least (one per completion; retries create more,
    and are counted when their pods are seen).
    """

    groups: int
    cores: Decimal
    creates: int

    @classmethod
    def of_job(cls, manifest: Obj) -> Demand:
        spec = manifest.get("spec") or {}
        completions = int(spec.get("completions") or 1)
        parallel = min(int(spec.get("parallelism") or 1), completions)
        return cls(groups=parallel, cores=parallel * pod_cores(spec.get("template") or {}), creates=completions)


def pod_cores(pod_or_template: Obj) -> Decimal:
    """vCPU of one pod (or pod template) after ACI rounding: the sum of its containers' requests."""
    total = Decimal(0)
    for c in (pod_or_template.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        cpu = (res.get("requests") or {}).get("cpu") or (res.get("limits") or {}).get("cpu")
        if cpu is not None:
            total += aci_cores(str(cpu))
    return total


@dataclass(frozen=True)
class Usage:
    """What the app holds: container groups and cores now, creates in the short and long windows."""

    groups: int = 0
    cores: Decimal = Decimal(0)
    creates_short: int = 0
    creates_long: int = 0
    create_times: tuple[datetime, ...] = ()
    """When each create counted in the long window happened, oldest first (for :meth:`Budget.wait`)."""

    def plus(self, d: Demand, at: datetime | None = None) -> Usage:
        times = self.create_times + ((at,) * d.creates if at is not None else ())
        return Usage(
            self.groups + d.groups,
            self.cores + d.cores,
            self.creates_short + d.creates,
            self.creates_long + d.creates,
            tuple(sorted(times)) if at is not None else times,
        )


@dataclass(frozen=True)
class Budget:
    """The quotas the app may use (settings), scaled by ``factor`` after capacity refusals."""

    groups: int
    cores: int
    creates_short: int
    creates_long: int
    windows: tuple[int, int] = (300, 3600)
    factor: float = 1.0

    def scaled(self, value: int) -> int:
        return max(1, math.floor(value * self.factor))

    def exhausted(self, usage: Usage, demand: Demand) -> str | None:
        """None if ``demand`` fits on top of ``usage``; else which resource is exhausted, in words
        ("100/100 container groups in use") for logs and the deferral reason."""
        short, long = self.windows
        checks: list[tuple[Decimal, Decimal, int, str]] = [
            (Decimal(usage.groups), Decimal(demand.groups), self.groups, "container groups in use"),
            (usage.cores, demand.cores, self.cores, "cores in use"),
            (Decimal(usage.creates_short), Decimal(demand.creates), self.creates_short, f"creates in {_span(short)}"),
            (Decimal(usage.creates_long), Decimal(demand.creates), self.creates_long, f"creates in {_span(long)}"),
        ]
        for used, wanted, quota, what in checks:
            limit = self.scaled(quota)
            # A Job larger than the whole (shrunk) budget still runs once nothing else is in use,
            # or it would wait forever; ``too_big`` rejects those larger than the unshrunk quota.
            if used + wanted > limit and used > 0:
                shrunk = "" if self.factor >= 1 else f" (budget shrunk to {limit} of {quota} after ACI refusals)"
                return f"{_num(used)}/{limit} {what}{shrunk}, this request needs {_num(wanted)}"
        return None

    def wait(self, usage: Usage, demand: Demand, *, now: datetime) -> float | None:
        """Seconds until enough creates leave the exhausted create window(s) for ``demand``;
        None when the groups or cores are exhausted (that depends on Jobs finishing)."""
        if usage.groups + demand.groups > self.scaled(self.groups) and usage.groups > 0:
            return None
        if usage.cores + demand.cores > self.scaled(self.cores) and usage.cores > 0:
            return None
        longest = 0.0
        for window, count, quota in (
            (self.windows[0], usage.creates_short, self.creates_short),
            (self.windows[1], usage.creates_long, self.creates_long),
        ):
            excess = count + demand.creates - self.scaled(quota)
            if excess <= 0 or count == 0:
                continue
            span = timedelta(seconds=window) + lag_allowance(self.windows)
            inside = [t for t in usage.create_times if t > now - span]
            if not inside:
                continue
            leaving = inside[min(excess, len(inside)) - 1]
            longest = max(longest, (leaving + span - now).total_seconds())
        return longest

    def too_big(self, demand: Demand) -> str | None:
        """Why a Job can never fit, however long it waits (larger than a whole quota), or None."""
        if demand.groups > self.groups:
            return f"runs {demand.groups} pods in parallel, more than VNB_CAPACITY_CONTAINER_GROUPS={self.groups}"
        if demand.cores > self.cores:
            return f"needs {_num(demand.cores)} cores in parallel, more than VNB_CAPACITY_CORES={self.cores}"
        if demand.creates > self.creates_short:
            return (
                f"creates {demand.creates} container groups, more than VNB_CAPACITY_CREATES_PER_5MIN="
                f"{self.creates_short} allows at once"
            )
        return None


def _num(value: Decimal | int) -> str:
    return f"{Decimal(value).normalize():f}"


def _span(seconds: int) -> str:
    if seconds % 3600 == 0:
        return "the last hour" if seconds == 3600 else f"the last {seconds // 3600} h"
    if seconds % 60 == 0:
        return f"the last {seconds // 60} min"
    return f"the last {seconds} s"


def condemned(job: Obj) -> bool:
    """The reconciler gave this Job's request back to the queue (or the Job is being deleted)."""
    meta = metadata_of(job)
    return bool(meta.get("deletionTimestamp")) or ANN_REQUEUED in (meta.get("annotations") or {})


def mark_attempt(manifest: dict[str, Any], request: Mapping[str, Any], attempt: int) -> None:
    """Carry the request and its capacity attempt on the Job, for a retry by the reconciler."""
    annotations = manifest["metadata"].setdefault("annotations", {})
    # Env values stay in the pod template only; request_of takes them back from there (issue 17).
    carried = without_env_values(request)
    annotations[ANN_REQUEST] = json.dumps(carried, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    annotations[ANN_CAPACITY_ATTEMPT] = str(attempt)


def attempt_of(job: Obj) -> int:
    """The capacity attempt a Job was created on (0 for a Job without the annotation)."""
    raw = (metadata_of(job).get("annotations") or {}).get(ANN_CAPACITY_ATTEMPT)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def request_of(job: Obj) -> dict[str, Any] | None:
    """The request carried on the Job (``mark_attempt``), or None if absent or unreadable."""
    raw = (metadata_of(job).get("annotations") or {}).get(ANN_REQUEST)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    containers = ((((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    main: dict[str, Any] = next((c for c in containers if c.get("name") == CONTAINER), {})
    return env_restored(value, list(main.get("env") or []))


# --- reading what the app holds from its Jobs and pods ----------------------------------


def _created_at(obj: Obj) -> datetime | None:
    """The latest moment an object may have been created: ``creationTimestamp`` has whole
    seconds (metav1.Time is serialised as RFC 3339 without fractions), so it is up to a second
    early; a create counted in a window must not leave it early."""
    created = parse_time(metadata_of(obj).get("creationTimestamp"))
    return created + timedelta(seconds=1) if created is not None else None


def provider_failed(pod: Obj) -> bool:
    """The provider refused the pod: no container group exists for it (azure-aci sets phase
    Failed, reason ProviderFailed when CreateContainerGroup fails; reference/virtual-node.md)."""
    return status_of(pod).get("phase") == "Failed" and status_of(pod).get("reason") == "ProviderFailed"


def _finished(job: Obj) -> bool:
    return terminal_condition(job) is not None


def job_creates(job: Obj) -> tuple[datetime, int] | None:
    """When a Job was created and the container groups it created at least by now (one per
    completion plus its failed pods), or None without a creation time."""
    created = _created_at(job)
    if created is None:
        return None
    spec = job.get("spec") or {}
    return created, int(spec.get("completions") or 1) + finished_pods(job)["failed"]


def usage_of(
    jobs: Iterable[Obj],
    pods: Iterable[Obj],
    *,
    now: datetime,
    windows: tuple[int, int],
    history: Mapping[str, tuple[datetime, int]] | None = None,
) -> Usage:
    """What the app's Jobs and pods hold now.

    ``history``: creates (:func:`job_creates`) of Jobs seen in earlier lists or created by this
    process, by Job name; those not in ``jobs`` (reported since) count in the create windows only.

    * groups/cores: every pod of the app that exists, whatever its phase, except ProviderFailed
      ones — a container group lives until its pod is deleted (azure-aci ``DeletePod`` deletes
      it; a stopped group still counts against the quota, the docs are silent on cores, so it is
      counted too) — plus, for a Job still starting, the pods the Job controller has yet to create
      (its completions less the pods that succeeded, at most its parallelism, less those running;
      a pod that ended but is not in the Job's status yet counts as ended, :func:`finished_pods`);
    * creates in each window: for a Job created inside it, one per completion plus its failed
      pods (each retry is a new container group); for an older Job, its pods created inside it.
      Pods already deleted of an older Job are not seen: the windows can be undercounted for
      arrays whose completions exceed their parallelism (docs/operations.md says so).
    """
    short_from = now - timedelta(seconds=windows[0]) - lag_allowance(windows)
    long_from = now - timedelta(seconds=windows[1]) - lag_allowance(windows)
    times: list[datetime] = []
    by_uid: dict[str, list[Obj]] = {}
    orphans: list[Obj] = []
    pod_list = list(pods)
    job_list = list(jobs)
    uids = {str(metadata_of(j).get("uid") or "") for j in job_list}
    names = {str(metadata_of(j).get("name") or "") for j in job_list}
    for pod in pod_list:
        owner = (metadata_of(pod).get("labels") or {}).get(CONTROLLER_UID)
        if owner in uids:
            by_uid.setdefault(str(owner), []).append(pod)
        else:
            orphans.append(pod)
    groups, cores, short, long = 0, Decimal(0), 0, 0
    for pod in orphans:
        if not provider_failed(pod):
            groups += 1
            cores += pod_cores(pod)
    for job in job_list:
        spec = job.get("spec") or {}
        per_pod = pod_cores(spec.get("template") or {})
        mine = by_uid.get(str(metadata_of(job).get("uid") or ""), [])
        held = [p for p in mine if not provider_failed(p)]
        groups += len(held)
        cores += sum((pod_cores(p) for p in held), Decimal(0))
        ended = finished_pods(job, mine)  # a pod that ended is never also one still to come
        if not _finished(job) and not metadata_of(job).get("deletionTimestamp"):
            completions = int(spec.get("completions") or 1)
            succeeded = ended["succeeded"]
            expected = min(int(spec.get("parallelism") or 1), max(0, completions - succeeded))
            running = sum(1 for p in held if status_of(p).get("phase") in ("Pending", "Running", None))
            missing = max(0, expected - running)
            groups += missing
            cores += missing * per_pod
        created = _created_at(job)
        if created is not None and created > long_from:
            n = int(spec.get("completions") or 1) + ended["failed"]
            long += n
            times.extend([created] * n)
            short += n if created > short_from else len(_created_since(mine, short_from))
        else:
            recent = _created_since(mine, long_from)
            long += len(recent)
            times.extend(recent)
            short += len(_created_since(mine, short_from))
    for name, (created, n) in (history or {}).items():
        if name in names or created <= long_from:
            continue
        long += n
        times.extend([created] * n)
        if created > short_from:
            short += n
    return Usage(groups=groups, cores=cores, creates_short=short, creates_long=long, create_times=tuple(sorted(times)))


def _created_since(pods: Sequence[Obj], since: datetime) -> list[datetime]:
    out = []
    for p in pods:
        created = _created_at(p)
        if created is not None and created > since:
            out.append(created)
    return out


# --- refusals: quota, capacity, throttling ---------------------------------------------------


def is_capacity_message(message: str) -> bool:
    """Whether a ProviderFailed message is ACI refusing for quota, capacity or create throttling
    (``shared.outcomes.provider_failure.classify``: class ``quotaOrCapacity``)."""
    return classify(message).failure_class == "quotaOrCapacity"


_ACI_MESSAGE: Final = re.compile(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"')


def brief(message: str) -> str:
    """A refusal in one line for logs: ACI's code, HTTP status and message, without azcore's
    request line and separators ("TooManyRequests (HTTP 429): The request is throttled …")."""
    failure = classify(message)
    found = _ACI_MESSAGE.search(message)
    text = found.group(1) if found else " ".join(message.split())
    head = failure.code or "ProviderFailed"
    if failure.status:
        head += f" (HTTP {failure.status})"
    return f"{head}: {text}"[:300]


def capacity_refusal(pod: Obj) -> str | None:
    """ACI's message when this pod was refused for quota, capacity or create throttling, else None
    (invalid-for-ACI refusals — names, resource rules — are failures of the request)."""
    if not provider_failed(pod):
        return None
    status = status_of(pod)
    texts = [str(status.get("message") or "")]
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        texts.append(str((state.get("waiting") or state.get("terminated") or {}).get("message") or ""))
    message = " ".join(t for t in texts if t).strip()
    return (message or "ProviderFailed") if is_capacity_message(message) else None


def ran(pod: Obj) -> bool:
    """A container of this pod started (its work may have side effects)."""
    for cs in status_of(pod).get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("running") or (state.get("terminated") or {}).get("startedAt"):
            return True
    return status_of(pod).get("phase") in ("Running", "Succeeded")


def capacity_retry(job: Obj, pods: Sequence[Obj]) -> str | None:
    """ACI's refusal message if this Job should go back to the queue for another attempt.

    * None of its pods has run and one was refused for quota/capacity/throttling: nothing of the
      work happened, so it goes back at once (before the Job controller's own retries hit the
      quota again).
    * Some pods ran: only once the Job has failed (Kubernetes' ``Failed`` condition, so no pod is
      still working), and only if every failure was ACI's refusal — for an Indexed Job, the last
      pod of each failed index (``status.failedIndexes``) was refused for capacity. The whole
      request runs again, indexes that had finished included (at-least-once, like any retry).
    A failure of the work itself (an exit code, a deadline) is never retried here.
    """
    refused = [(p, why) for p in pods if (why := capacity_refusal(p)) is not None]
    if not refused:
        return None
    if not any(ran(p) for p in pods) and not finished_pods(job)["succeeded"]:
        return refused[-1][1]
    if not _failed(job):
        return None
    failed = [p for p in pods if status_of(p).get("phase") == "Failed"]
    spec = job.get("spec") or {}
    if spec.get("completionMode") == "Indexed":
        last: dict[int | None, Obj] = {}
        for p in sorted(failed, key=lambda p: str(metadata_of(p).get("creationTimestamp") or "")):
            last[pod_index(p)] = p
        indexes: set[int | None] = set(index_set(str(status_of(job).get("failedIndexes") or "")))
        if not indexes or any(i not in last or capacity_refusal(last[i]) is None for i in indexes):
            return None
    elif any(capacity_refusal(p) is None for p in failed):
        return None
    return refused[-1][1]


def _failed(job: Obj) -> bool:
    cond = terminal_condition(job)
    return cond is not None and not is_success(cond)


def may_need_retry(job: Obj) -> bool:
    """Whether the reconciler must look at this running Job's pods: one of them failed (counted,
    or still listed in ``uncountedTerminatedPods``)."""
    return finished_pods(job)["failed"] > 0


# --- fairness among waiting requests -----------------------------------------------------


def defer_delay(first_seen: datetime, waiting: Sequence[datetime], *, longest: int) -> int:
    """Visibility delay (whole seconds) for a request that waits for capacity.

    Older requests come back sooner: the delay grows with the request's age rank among the
    waiting requests this process knows of, from a quarter of ``longest`` (the oldest) to
    ``longest`` (the youngest). When capacity frees up, the oldest are the first to ask again.
    """
    older = sum(1 for t in waiting if t < first_seen)
    share = older / max(1, len(waiting))
    return max(1, math.ceil(longest * (0.25 + 0.75 * share)))


__all__ = [
    "ANN_CAPACITY_ATTEMPT",
    "ANN_REQUEST",
    "ANN_REQUEUED",
    "Budget",
    "Demand",
    "Usage",
    "aci_cores",
    "attempt_of",
    "brief",
    "capacity_refusal",
    "capacity_retry",
    "condemned",
    "defer_delay",
    "is_capacity_message",
    "job_creates",
    "lag_allowance",
    "mark_attempt",
    "may_need_retry",
    "pod_cores",
    "provider_failed",
    "request_of",
    "usage_of",
]
