"""What a Job cost on ACI (pure: no I/O).

ACI bills a container group per second for the vCPU and memory it *requests* — not for what
the containers use — from the moment the group starts until it stops. On the AKS virtual
node one pod is one container group, so a Job's cost is the sum over its pods (every
attempt of every index) of::

    billed vCPU × billed seconds × price per vCPU-second
  + billed GB   × billed seconds × price per GB-second

* **Billed resources** are what the virtual node hands to ACI, not the manifest's values:
  azure-aci floors the CPU request to 0.01 vCPU (``float64(MilliValue()/10)/100``) and
  converts memory to decimal GB floored to 0.1 (virtual-kubelet/azure-aci
  ``pkg/provider/aci.go getContainers``; /work/shared/reference/virtual-node.md "Resources").
  A group's total is the sum of its containers.
* **Billed time** runs from the container group's start to its stop, which azure-aci reports
  in the pod status as the containers' ``startedAt`` / ``finishedAt`` (from ACI's
  ``currentState.startTime`` / ``finishTime``, ``pkg/provider/containergroup_to_pod.go``).
  Kubernetes times have whole-second resolution, like ACI's per-second meter. A group still
  running when the Job is judged failed (stuck, lost, deadline) is counted until that verdict.
  ACI's pricing page says billing starts when the first image starts to be pulled; the pod
  status does not expose the pull start, so pull time is not in the figure (documented in
  docs/events.md as a known under-count).
* **Time not billed** is reported beside it: ``pendingSeconds`` (pod created → group started:
  scheduling, ACI create, image pull) and nothing at all for a pod that never started
  (``ProviderFailed``: the group was never created).
* **Failed attempts** (pods that ended ``Failed``, then retried under ``backoffLimit``) are in
  the total and also reported on their own, so a user sees what retries cost.

Prices come from settings (``Prices``); the defaults and their source are in the README.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from shared.base.quantity import parse_cpu, parse_memory
from shared.base.times import parse_time
from shared.config.settings import Prices
from shared.job.read import pod_index

Obj = Mapping[str, Any]

_CENTI = Decimal("0.01")
_DECI = Decimal("0.1")
_GB = Decimal(10**9)


def billed_cpu(request: Decimal) -> Decimal:
    """vCPU ACI receives for a CPU request: floored to 0.01 (azure-aci ``getContainers``)."""
    return (request / _CENTI).to_integral_value(rounding=ROUND_FLOOR) * _CENTI


def billed_memory_gb(request_bytes: int) -> Decimal:
    """Decimal GB ACI receives for a memory request: bytes / 10^9 floored to 0.1
    (azure-aci ``getContainers``). ``1Gi`` is 1.0 GB, ``1.5Gi`` is 1.6 GB."""
    return (Decimal(request_bytes) / _GB / _DECI).to_integral_value(rounding=ROUND_FLOOR) * _DECI


def billed_resources(pod: Obj) -> tuple[Decimal, Decimal]:
    """(vCPU, GB) ACI bills for this pod's container group: the sum of its containers' requests
    after ACI's rounding. A container without a request counts 0 here (the app always sets them)."""
    cpu, gb = Decimal(0), Decimal(0)
    for c in (pod.get("spec") or {}).get("containers") or []:
        requests = (c.get("resources") or {}).get("requests") or {}
        if requests.get("cpu") is not None:
            cpu += billed_cpu(parse_cpu(str(requests["cpu"])))
        if requests.get("memory") is not None:
            gb += billed_memory_gb(parse_memory(str(requests["memory"])))
    return cpu, gb


def _container_states(pod: Obj) -> list[Obj]:
    return [cs for cs in (pod.get("status") or {}).get("containerStatuses") or [] if isinstance(cs, Mapping)]


def group_window(pod: Obj, *, until: datetime) -> tuple[datetime, datetime] | None:
    """(start, stop) of the pod's container group, or None if it never started.

    Start: the earliest container ``startedAt``; stop: the latest ``finishedAt`` once every
    container has terminated, else ``until`` (the group is still running at the verdict).
    """
    starts: list[datetime] = []
    ends: list[datetime] = []
    running = False
    for cs in _container_states(pod):
        state = cs.get("state") or {}
        if state.get("running"):
            running = True
        current = state.get("running") or state.get("terminated") or {}
        start = parse_time(current.get("startedAt"))
        if start is not None:
            starts.append(start)
        end = parse_time((state.get("terminated") or {}).get("finishedAt"))
        if end is not None:
            ends.append(end)
    if not starts:
        return None
    start = min(starts)
    stop = until if running or not ends else max(ends)
    return start, max(stop, start)


@dataclass(frozen=True)
class PodCost:
    pod: str
    index: int | None
    phase: str
    vcpu: Decimal
    gb: Decimal
    billed_seconds: int
    pending_seconds: int
    started: bool

    @property
    def vcpu_seconds(self) -> Decimal:
        return self.vcpu * self.billed_seconds

    @property
    def gb_seconds(self) -> Decimal:
        return self.gb * self.billed_seconds

    @property
    def failed(self) -> bool:
        return self.phase == "Failed"


def pod_cost(pod: Obj, *, until: datetime) -> PodCost:
    """Billed resources and seconds of one pod (one ACI container group)."""
    meta = pod.get("metadata") or {}
    cpu, gb = billed_resources(pod)
    window = group_window(pod, until=until)
    created = parse_time(meta.get("creationTimestamp"))
    billed = int((window[1] - window[0]).total_seconds()) if window else 0
    pending_until = window[0] if window else until
    pending = int(max((pending_until - created).total_seconds(), 0)) if created else 0
    return PodCost(
        pod=str(meta.get("name") or ""),
        index=pod_index(pod),
        phase=str((pod.get("status") or {}).get("phase") or ""),
        vcpu=cpu,
        gb=gb,
        billed_seconds=billed,
        pending_seconds=pending,
        started=window is not None,
    )


@dataclass(frozen=True)
class Usage:
    """vCPU-seconds and GB-seconds, and what they cost at ``prices``."""

    vcpu_seconds: Decimal
    gb_seconds: Decimal

    def amount(self, prices: Prices) -> Decimal:
        return self.vcpu_seconds * prices.vcpu_second + self.gb_seconds * prices.gb_second

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.vcpu_seconds + other.vcpu_seconds, self.gb_seconds + other.gb_seconds)


ZERO = Usage(Decimal(0), Decimal(0))


def _usage(pods: Sequence[PodCost]) -> Usage:
    return sum((Usage(p.vcpu_seconds, p.gb_seconds) for p in pods), ZERO)


def _num(value: Decimal, places: int) -> float:
    return float(round(value, places))


def _usage_dict(usage: Usage, prices: Prices) -> dict[str, Any]:
    return {
        "vcpuSeconds": _num(usage.vcpu_seconds, 3),
        "gbSeconds": _num(usage.gb_seconds, 3),
        "amount": _num(usage.amount(prices), 8),
    }


def job_cost(pods: Sequence[Obj], *, prices: Prices, until: datetime) -> dict[str, Any]:
    """The ``cost`` object of a job event (docs/events.md "cost"; schema ``cost.v1.json``).

    ``until`` is when the Job finished (or was judged failed): a group still running then is
    billed up to it. Amounts are in ``prices.currency``, rounded to 8 decimals (a short job
    costs a fraction of a cent); the seconds to 3 decimals.
    """
    costs = [pod_cost(p, until=until) for p in pods]
    failed = [c for c in costs if c.failed]
    total = _usage(costs)
    out: dict[str, Any] = {
        **_usage_dict(total, prices),
        "currency": prices.currency,
        "billedSeconds": sum(c.billed_seconds for c in costs),
        "pendingSeconds": sum(c.pending_seconds for c in costs),
        "containerGroups": sum(1 for c in costs if c.started),
        "failedAttempts": {**_usage_dict(_usage(failed), prices), "count": len(failed)},
        "prices": prices.as_dict(),
        "indexes": None,
    }
    indexes = sorted({c.index for c in costs if c.index is not None})
    if indexes:
        out["indexes"] = [
            {
                "index": i,
                "attempts": len(mine),
                **_usage_dict(_usage(mine), prices),
            }
            for i in indexes
            for mine in [[c for c in costs if c.index == i]]
        ]
    return out
