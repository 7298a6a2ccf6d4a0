"""Per subscription + region quotas and create rates of ACI, as one stand-in instance models them.

Sources:
- ACI "Resource availability & quota limits"
  (https://learn.microsoft.com/azure/container-instances/container-instances-resource-and-quota-limits,
  MicrosoftDocs/azure-compute-docs ``articles/container-instances/container-instances-resource-and-quota-limits.md``):
  100 standard container groups and 100 standard cores per region per subscription; 100 creates
  per 5 minutes and 300 per hour (the same for deletes); all raisable by support request.
- Over a quota ACI answers ``ContainerGroupQuotaReached`` (HTTP 400) "Resource type
  'Microsoft.ContainerInstance/containerGroups' container group quota '<quota>' exceeded in region
  '<region>'. Limit: '<n>', Usage: '<n>' Requested: '<n>'." (quota names ``ContainerGroups``,
  ``StandardCores``: MicrosoftDocs/SupportArticles-docs ``…/container-group-quota-exceeded.md``,
  MicrosoftDocs/azure-docs#51738).
- The create-rate error is not documented: the source is silent on its code and text. The model
  answers HTTP 429 ``TooManyRequests`` (what ARM documents for throttling) with a message of its own.
  azcore's retry policy retries a 429 three times; a 5-minute window outlasts those retries, so the
  pod fails.
- Whether a stopped (Succeeded/Failed) container group still counts against ``StandardCores`` is
  not documented (source silent). A group exists until the pod is deleted (azure-aci ``DeletePod``
  is the only delete), so it always counts against ``ContainerGroups``; ``cores_held_when_stopped``
  (default True) says whether it also keeps its cores.
- The delete rate is counted but not enforced (a refused delete in azure-aci only logs and retries).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field

from devtools.standins.virtual_node.errors import REGION, Refusal, arm_error, fmt_number
from devtools.standins.virtual_node.resources import capacity_refusal

FIVE_MINUTES = 300.0
HOUR = 3600.0


@dataclass(frozen=True)
class QuotaSettings:
    """ACI's defaults for one subscription + region (all raisable on Azure by support request)."""

    container_groups: int = 100
    standard_cores: float = 100.0
    creates_per_5_minutes: int = 100
    creates_per_hour: int = 300
    cores_held_when_stopped: bool = True


@dataclass
class QuotaCounters:
    """What a benchmark reads: current and peak usage, accepted creates, and refused creates by
    code (every ``CreatePod`` that failed: quota, rate, capacity, invalid for ACI or the provider;
    not the env-resolution errors that keep a pod Pending, which never reach ``CreatePod``)."""

    groups_in_use: int = 0
    cores_in_use: float = 0.0
    peak_groups: int = 0
    peak_cores: float = 0.0
    creates_accepted: int = 0
    create_times: list[float] = field(default_factory=list)
    """Simulated second of every accepted create (where a benchmark lost create slots)."""
    creates_refused: collections.Counter[str] = field(default_factory=collections.Counter)
    deletes: int = 0


@dataclass
class _Fault:
    code: str
    remaining: int


@dataclass
class _Group:
    cores: float
    stopped: bool = False


class QuotaLedger:
    """Container groups that exist, create timestamps and injected faults. Not thread-safe: the
    cluster lock guards it. ``clock`` returns simulated seconds."""

    def __init__(self, settings: QuotaSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.counters = QuotaCounters()
        self._groups: dict[str, _Group] = {}
        self._creates: collections.deque[float] = collections.deque()
        self._faults: list[_Fault] = []
        self.capacity_available = True

    # ------------------------------------------------------------------ faults

    def inject(self, code: str, times: int = 1) -> None:
        """The next ``times`` creates fail with ``code``: ``ServiceUnavailable`` (409, regional
        capacity) or ``TooManyRequests`` (429 throttling)."""
        if code not in ("ServiceUnavailable", "TooManyRequests"):
            raise ValueError(f"unknown fault code {code!r}: use ServiceUnavailable or TooManyRequests")
        self._faults.append(_Fault(code, times))

    def clear_faults(self) -> None:
        self._faults.clear()
        self.capacity_available = True

    def _fault(self, cores: float, memory_gb: float) -> Refusal | None:
        if not self.capacity_available:
            return capacity_refusal(cores, memory_gb)
        if not self._faults:
            return None
        fault = self._faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            self._faults.pop(0)
        if fault.code == "TooManyRequests":
            return self._throttled("injected")
        return capacity_refusal(cores, memory_gb)

    # ------------------------------------------------------------------ create / stop / delete

    def _throttled(self, why: str) -> Refusal:
        s = self.settings
        return arm_error(
            429,
            "TooManyRequests",
            f"The request is throttled ({why}): container group creates in region '{REGION}' are limited to "
            f"{s.creates_per_5_minutes} per 5 minutes and {s.creates_per_hour} per hour. Please retry later.",
        )

    def _quota(self, name: str, limit: float, usage: float, requested: float) -> Refusal:
        return arm_error(
            400,
            "ContainerGroupQuotaReached",
            f"Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota '{name}' exceeded in "
            f"region '{REGION}'. Limit: '{fmt_number(limit)}', Usage: '{fmt_number(usage)}' Requested: "
            f"'{fmt_number(requested)}'.",
        )

    def admit(self, cg_name: str, cores: float, memory_gb: float) -> Refusal | None:
        """Create the group if quotas, rates and faults allow; else the refusal (counted)."""
        refusal = self._admit(cg_name, cores, memory_gb)
        if refusal is not None:
            self.counters.creates_refused[refusal.code] += 1
        return refusal

    def _admit(self, cg_name: str, cores: float, memory_gb: float) -> Refusal | None:
        s, c = self.settings, self.counters
        now = self.clock()
        while self._creates and self._creates[0] <= now - HOUR:
            self._creates.popleft()
        in_5 = sum(1 for t in self._creates if t > now - FIVE_MINUTES)
        if in_5 >= s.creates_per_5_minutes:
            return self._throttled("creates per 5 minutes")
        if len(self._creates) >= s.creates_per_hour:
            return self._throttled("creates per hour")
        fault = self._fault(cores, memory_gb)
        if fault is not None:
            return fault
        if cg_name in self._groups:
            return None  # a PUT on an existing group updates it: no new quota (source: ARM PUT semantics)
        if c.groups_in_use + 1 > s.container_groups:
            return self._quota("ContainerGroups", s.container_groups, c.groups_in_use, 1)
        if c.cores_in_use + cores > s.standard_cores + 1e-9:
            return self._quota("StandardCores", s.standard_cores, c.cores_in_use, cores)
        self._creates.append(now)
        self._groups[cg_name] = _Group(cores)
        c.creates_accepted += 1
        c.create_times.append(now)
        c.groups_in_use += 1
        c.cores_in_use += cores
        c.peak_groups = max(c.peak_groups, c.groups_in_use)
        c.peak_cores = max(c.peak_cores, c.cores_in_use)
        return None

    def stopped(self, cg_name: str) -> None:
        g = self._groups.get(cg_name)
        if g is None or g.stopped:
            return
        g.stopped = True
        if not self.settings.cores_held_when_stopped:
            self.counters.cores_in_use -= g.cores

    def delete(self, cg_name: str) -> None:
        g = self._groups.pop(cg_name, None)
        if g is None:
            return
        c = self.counters
        c.deletes += 1
        c.groups_in_use -= 1
        if not (g.stopped and not self.settings.cores_held_when_stopped):
            c.cores_in_use -= g.cores
        c.cores_in_use = max(0.0, round(c.cores_in_use, 6))

    def exists(self, cg_name: str) -> bool:
        return cg_name in self._groups
