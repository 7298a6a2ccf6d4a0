"""CPU and memory: what azure-aci sends to ACI, and ACI's request/limit and per-group rules.

Sources:
- virtual-kubelet/azure-aci ``pkg/provider/aci.go getContainers``: CPU request
  ``float64(MilliValue()/10)/100`` (integer division: floored to 0.01 vCPU, at least 0.01; 1.0
  when no request); memory request ``float64(Value()/100000000)/10`` (floored to 0.1 GB decimal,
  at least 0.1; 1.5 when no request). Limits only when ``resources.limits`` is set: CPU limit
  ``MilliValue()/1000`` (exact), memory limit floored to 0.1 GB like the request; a missing CPU
  or memory limit defaults to the request. Only ``cpu``, ``memory`` and ``nvidia.com/gpu`` are
  read: every other resource name is dropped.
- The API server defaults a missing request to the limit (kubernetes ``pkg/apis/core/v1/defaults.go
  SetDefaults_Pod``), so the provider sees ``requests`` = ``limits`` for a resource given only a
  limit; ``aci_resources`` applies that defaulting to a raw manifest.
- ``Quantity.MilliValue``/``Value`` round up (k8s.io/apimachinery ``resource.Quantity``).
- ACI ``ResourceLimitsLessThanRequests`` (HTTP 400): a limit below the request. Message as quoted
  in virtual-kubelet/virtual-kubelet#143.
- ACI ``ContainerLimitGreaterThanContainerGroupTotalRequest`` (HTTP 400): a container's limit
  above the sum of the group's requests. Message as quoted in virtual-kubelet/azure-aci#17, #149
  and docker/compose-cli#743 (``MemoryInGB``).
- Per-group size: the ACI limits page
  (https://learn.microsoft.com/azure/container-instances/container-instances-resource-and-quota-limits)
  gives 31 vCPU / 240 GB as the hard maximum but warns that groups above 4 vCPU / 16 GB fail on
  regional capacity; such a create is answered ``409 ServiceUnavailable`` "The requested resource
  is not available in the location …" (virtual-kubelet/virtual-kubelet#592). The model refuses
  above ``max_cpu``/``max_memory_gb`` (default 4 / 16, configurable) with that error.
- GPU: ``getGPUSKU`` refuses a GPU limit when the region offers no GPU SKU; ACI GPU was retired on
  2025-07-14 (limits page above), so every GPU request is refused.
- The order in which ACI applies its checks is not documented (source silent).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from devtools.standins.virtual_node.errors import REGION, Refusal, arm_error, fmt_number

GPU = "nvidia.com/gpu"
DEFAULT_CPU = 1.0
DEFAULT_MEMORY_GB = 1.5


def _ceil(q: Any) -> int:
    return math.ceil(Decimal(parse_quantity(q)))  # type: ignore[no-untyped-call]


def _milli(q: Any) -> int:
    return math.ceil(Decimal(parse_quantity(q)) * 1000)  # type: ignore[no-untyped-call]


def _cpu_request(milli: int) -> float:
    return max(float(milli // 10) / 100.0, 0.01)


def _memory_gb(value: int) -> float:
    return float(value // 100_000_000) / 10.0


def aci_resources(container: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """``(cpu_request, cpu_limit, memory_request_gb, memory_limit_gb)`` as ACI receives them.

    vCPU and decimal GB (1 GB = 10**9 bytes), as floats computed the way azure-aci
    ``getContainers`` computes them. Without ``resources.limits`` azure-aci sends no limits and ACI
    uses the requests, so the limits returned then equal the requests.
    Raises ``ValueError`` for a quantity Kubernetes would not parse.
    """
    res = container.get("resources") or {}
    limits = res.get("limits")
    requests = {**{k: v for k, v in (limits or {}).items() if k in ("cpu", "memory")}, **(res.get("requests") or {})}
    cpu_req = _cpu_request(_milli(requests["cpu"])) if "cpu" in requests else DEFAULT_CPU
    mem_req = max(_memory_gb(_ceil(requests["memory"])), 0.1) if "memory" in requests else DEFAULT_MEMORY_GB
    cpu_lim, mem_lim = cpu_req, mem_req
    if limits is not None:
        if "cpu" in limits:
            cpu_lim = float(_milli(limits["cpu"])) / 1000.0
        if "memory" in limits:
            mem_lim = _memory_gb(_ceil(limits["memory"]))
    return cpu_req, cpu_lim, mem_req, mem_lim


def gpu_refusal(containers: Sequence[Mapping[str, Any]]) -> Refusal | None:
    for c in containers:
        limits = (c.get("resources") or {}).get("limits")
        if limits is not None and GPU in limits:
            return Refusal(
                "ProviderError",
                f"the pod requires GPU resource, but ACI doesn't provide GPU enabled container group in region {REGION}",
            )
    return None


def group_refusal(
    cg_name: str, containers: Sequence[Mapping[str, Any]], *, max_cpu: float, max_memory_gb: float
) -> Refusal | None:
    """ACI's resource rules for one container group, or ``None`` if ACI accepts the sizes."""
    sizes = [(str(c.get("name", "")), aci_resources(c)) for c in containers]
    total_cpu = sum(s[0] for _, s in sizes)
    total_mem = sum(s[2] for _, s in sizes)
    for name, (cpu_req, cpu_lim, mem_req, mem_lim) in sizes:
        for label, req, lim in (("Cpu", cpu_req, cpu_lim), ("MemoryInGB", mem_req, mem_lim)):
            if lim < req:
                requirement = json.dumps(
                    {
                        "requests": {"memoryInGB": mem_req, "cpu": cpu_req},
                        "limits": {"memoryInGB": mem_lim, "cpu": cpu_lim},
                    },
                    separators=(",", ":"),
                )
                return arm_error(
                    400,
                    "ResourceLimitsLessThanRequests",
                    f"The resource requirement '{requirement}' in container '{name}' of contain group '{cg_name}' "
                    f"is invalid. The '{label}' limit value must be greater than or equal to the request value.",
                )
    for name, (_, cpu_lim, _, mem_lim) in sizes:
        for label, lim, total in (("Cpu", cpu_lim, total_cpu), ("MemoryInGB", mem_lim, total_mem)):
            if lim > total + 1e-9:
                return arm_error(
                    400,
                    "ContainerLimitGreaterThanContainerGroupTotalRequest",
                    f"The '{label}' limit '{fmt_number(lim)}' in container '{name}' is greater than the total "
                    f"request '{fmt_number(total)}' of container group '{cg_name}'.",
                )
    if total_cpu > max_cpu + 1e-9 or total_mem > max_memory_gb + 1e-9:
        return capacity_refusal(total_cpu, total_mem)
    return None


def capacity_refusal(cpu: float, memory_gb: float) -> Refusal:
    """ACI's answer when the region has no room for a group of this size (409 ServiceUnavailable)."""
    return arm_error(
        409,
        "ServiceUnavailable",
        f"The requested resource is not available in the location '{REGION}' at this moment. Please retry with a "
        f"different resource request or in another location. Resource requested: '{fmt_number(cpu)}' CPU "
        f"'{fmt_number(memory_gb)}' GB memory 'Linux' OS virtual network",
    )


def group_cores(containers: Sequence[Mapping[str, Any]]) -> float:
    """The group's total CPU request in vCPU (what the StandardCores quota counts)."""
    return sum(aci_resources(c)[0] for c in containers)
