"""CPU and memory quantities: Kubernetes notation in, canonical values out (pure).

Parsing uses the kubernetes client's own ``parse_quantity`` so a request accepts exactly
what ``kubectl`` would; values are normalised to millicores and bytes so that the
manifest always carries requests == limits in one canonical spelling (ACI rejects limits
above requests).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import ModuleType

_MI = 1024 * 1024

ACI_CPU_STEP = Decimal("0.01")
"""azure-aci ``getContainers`` (pkg/provider/aci.go) sends the CPU *request* floored to 0.01 vCPU
(``float64(MilliValue()/10)/100``) but the *limit* exactly (``MilliValue()/1000``): only a
multiple of 10m arrives as request == limit, which ACI requires (it refuses a limit above the
request: ``ContainerLimitGreaterThanContainerGroupTotalRequest``)."""
ACI_MEMORY_STEP = 100_000_000
"""azure-aci ``getContainers`` sends memory request and limit as decimal GB floored to 0.1
(``float64(Value()/100000000)/10``): a multiple of 100 MB (decimal) arrives unchanged."""


@functools.cache
def _kubernetes_quantity() -> ModuleType:
    """The kubernetes client's ``kubernetes/utils/quantity.py``, loaded on its own.

    ``import kubernetes.utils.quantity`` first runs ``kubernetes/__init__.py``, which imports the
    whole generated client (hundreds of modules): settings are validated when the worker indexes
    the app, so that import would land on every cold start. The module itself imports only
    ``decimal``, so it is loaded from its file; once the package is imported, its copy is used.
    """
    loaded = sys.modules.get("kubernetes.utils.quantity")
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("kubernetes")  # finds, does not import, a top-level package
    if package is None or not package.submodule_search_locations:
        raise ImportError("the kubernetes package is not installed (requirements.txt)")
    path = Path(next(iter(package.submodule_search_locations))) / "utils" / "quantity.py"
    spec = importlib.util.spec_from_file_location("shared.base._kubernetes_quantity", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_quantity(value: object) -> Decimal:
    """kubernetes ``utils.quantity.parse_quantity``: a quantity string or number as a Decimal.

    Raises ValueError for anything that is not a Kubernetes quantity."""
    parse: Callable[[object], Decimal] = _kubernetes_quantity().parse_quantity
    return parse(value)


def _parse(value: str | int | float | Decimal, what: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number or a Kubernetes quantity string")
    if isinstance(value, float):
        # The number as written, not its binary approximation: Decimal(0.33) is 0.33000000000000001554…,
        # which rounds up to 331m, while repr() is the shortest string that reads back as the same
        # float (Python docs, "Floating-Point Arithmetic: Issues and Limitations"), so the JSON number
        # 0.33 gives what the string "0.33" gives.
        given: object = value
        value = Decimal(repr(value))
    else:
        given = value
    try:
        number = parse_quantity(value)
    except (ValueError, TypeError, InvalidOperation) as e:
        raise ValueError(
            f"{what} {value!r} is not a Kubernetes quantity (e.g. {'0.5, 2, 500m' if what == 'cpu' else '512Mi, 1.5Gi, 2G'})"
        ) from e
    if not number.is_finite():
        raise ValueError(f"{what} must be a finite number, not {given!r}")
    if number <= 0:
        raise ValueError(f"{what} must be greater than 0")
    return Decimal(number)


def parse_cpu(value: str | int | float | Decimal) -> Decimal:
    """vCPU as a Decimal, rounded up to whole millicores (``"500m"`` → 0.5)."""
    cores = _parse(value, "cpu")
    millis = (cores * 1000).to_integral_value(rounding="ROUND_CEILING")
    return millis / Decimal(1000)


def parse_memory(value: str | int | float | Decimal) -> int:
    """Bytes as an int (``"1.5Gi"`` → 1610612736); a bare number means bytes, as in Kubernetes."""
    return int(_parse(value, "memory").to_integral_value(rounding="ROUND_CEILING"))


def format_cpu(cores: Decimal) -> str:
    """Canonical CPU quantity: whole cores as ``"2"``, otherwise millicores ``"500m"``."""
    millis = int(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(size: int) -> str:
    """Canonical memory quantity: ``Mi`` when it divides evenly, else bytes."""
    return f"{size // _MI}Mi" if size % _MI == 0 else str(size)


def human_memory(size: int) -> str:
    """For error messages: ``16Gi`` / ``1.5Gi`` / ``512Mi``."""
    gib = Decimal(size) / (1024 * _MI)
    if gib >= 1:
        return f"{gib.normalize():f}Gi"
    return f"{Decimal(size) / _MI:.0f}Mi"


def aci_cpu(cores: Decimal) -> Decimal:
    """CPU as ACI will receive it, rounded UP to a multiple of 10m (``0.125`` → ``0.13``).

    Rounding up gives the container at least what was asked; see ACI_CPU_STEP for why.
    """
    steps = (cores / ACI_CPU_STEP).to_integral_value(rounding="ROUND_CEILING")
    return steps * ACI_CPU_STEP


def aci_memory(size: int) -> int:
    """Memory in bytes as ACI will receive it, rounded UP to 100 MB decimal (``1.5Gi`` → 1.7e9).

    The virtual node floors to 0.1 GB (ACI_MEMORY_STEP); a value already on that step is what
    ACI gets, and rounding up means it is never less than what was asked.
    """
    return -(-size // ACI_MEMORY_STEP) * ACI_MEMORY_STEP


def format_memory_decimal(size: int) -> str:
    """A decimal quantity as Kubernetes writes it canonically: ``"2G"``, ``"1500M"``, bytes otherwise."""
    for suffix, factor in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def human_memory_decimal(size: int) -> str:
    """For messages about ACI: ``1.7 GB`` (decimal, as ACI counts)."""
    return f"{(Decimal(size) / 10**9).normalize():f} GB"
