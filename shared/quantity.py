"""CPU and memory quantities: Kubernetes notation in, canonical values out (pure).

Parsing uses the kubernetes client's own ``parse_quantity`` so a request accepts exactly
what ``kubectl`` would; values are normalised to millicores and bytes so that the
manifest always carries requests == limits in one canonical spelling (ACI rejects limits
above requests).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from kubernetes.utils.quantity import parse_quantity

_MI = 1024 * 1024


def _parse(value: str | int | float | Decimal, what: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number or a Kubernetes quantity string")
    try:
        number = parse_quantity(value)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, InvalidOperation) as e:
        raise ValueError(
            f"{what} {value!r} is not a Kubernetes quantity (e.g. {'0.5, 2, 500m' if what == 'cpu' else '512Mi, 1.5Gi, 2G'})"
        ) from e
    if not number.is_finite() or number <= 0:
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
