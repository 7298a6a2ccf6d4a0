"""Settings of cost (ACI prices) and of the idle stop of the cluster."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import field_validator

from shared.config.fields import SettingsGroup, setting

DEFAULT_PRICE_VCPU_SECOND = Decimal("0.00001125")
"""ACI Linux, East US, pay-as-you-go: 0.0405 per vCPU-hour / 3600 (README "Cost" gives the source)."""
DEFAULT_PRICE_GB_SECOND = Decimal("0.0000012361")
"""ACI Linux, East US, pay-as-you-go: 0.00445 per GB-hour / 3600, rounded to 10 decimals."""
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class Prices:
    """List prices: currency units per vCPU-second and per GB-second (decimal GB)."""

    vcpu_second: Decimal
    gb_second: Decimal
    currency: str

    def as_dict(self) -> dict[str, Any]:
        """The prices as events and reports show them: ``{"currency", "vcpuSecond", "gbSecond"}`` (decimal strings)."""
        return {"currency": self.currency, "vcpuSecond": str(self.vcpu_second), "gbSecond": str(self.gb_second)}


class CostSettings(SettingsGroup):
    """Prices and the idle stop."""

    price_vcpu_second: Decimal = setting(
        "VNB_PRICE_VCPU_SECOND",
        DEFAULT_PRICE_VCPU_SECOND,
        "Price of one vCPU-second of an ACI Linux container group, in `VNB_PRICE_CURRENCY`, for the `cost` "
        'of job events and `cli cost`. Default: the pay-as-you-go list price of East US (README "Cost").',
    )
    price_gb_second: Decimal = setting(
        "VNB_PRICE_GB_SECOND",
        DEFAULT_PRICE_GB_SECOND,
        "Price of one GB-second (decimal GB) of ACI Linux memory, in `VNB_PRICE_CURRENCY`. Default: East US list price.",
    )
    price_currency: str = setting("VNB_PRICE_CURRENCY", "USD", "ISO 4217 code of the prices (three capital letters).")
    idle_stop_minutes: int | None = setting(
        "VNB_IDLE_STOP_MINUTES",
        None,
        "aks mode: stop the AKS cluster (ARM managedClusters stop) after this many minutes with no Job, no waiting "
        "request and no schedule due within `VNB_CLUSTER_START_SECONDS`; the next request starts it again. "
        'Unset = never stop (docs/operations.md "Idle stop").',
    )
    cluster_start_seconds: int = setting(
        "VNB_CLUSTER_START_SECONDS",
        600,
        "How long a stopped cluster takes to start and show its virtual node Ready (an estimate): no idle stop "
        "happens when a schedule is due sooner than this.",
    )

    @field_validator("price_vcpu_second", "price_gb_second", mode="before")
    @classmethod
    def _price_text(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return Decimal(value.strip())
            except ArithmeticError:
                raise ValueError(f"not a number: {value!r} (e.g. `0.00001125`)") from None
        return value

    @field_validator("price_vcpu_second", "price_gb_second")
    @classmethod
    def _price(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value < 0:
            raise ValueError("must be a number of 0 or more (a price per second, e.g. `0.00001125`)")
        return value

    @field_validator("price_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.fullmatch(value):
            raise ValueError("an ISO 4217 currency code: three capital letters, e.g. `USD`, `EUR`")
        return value

    @field_validator("idle_stop_minutes", "cluster_start_seconds")
    @classmethod
    def _positive_optional(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("must be a whole number of at least 1")
        return value

    @property
    def prices(self) -> Prices:
        """The ACI prices the cost of a Job is computed with (``shared.cost.pricing``)."""

        return Prices(vcpu_second=self.price_vcpu_second, gb_second=self.price_gb_second, currency=self.price_currency)
