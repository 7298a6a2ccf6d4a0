"""Cost of a Job (shared.cost.pricing): ACI's rounding, billed windows, retries, arrays, and the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.config.settings import Prices, SettingsError
from shared.cost.pricing import billed_cpu, billed_memory_gb, billed_resources, group_window, job_cost
from tests.conftest import make_env

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
PRICES = Prices(vcpu_second=Decimal("0.00001125"), gb_second=Decimal("0.0000012361"), currency="USD")


def _t(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def pod(
    name: str,
    *,
    cpu: str = "1",
    memory: str = "1536Mi",
    created: float = 0,
    started: float | None = 10,
    finished: float | None = 70,
    phase: str = "Succeeded",
    index: int | None = None,
) -> dict[str, Any]:
    if started is None:
        state: dict[str, Any] = {"waiting": {"reason": "ProviderFailed"}}
    elif finished is None:
        state = {"running": {"startedAt": _t(started)}}
    else:
        code = 0 if phase == "Succeeded" else 1
        state = {"terminated": {"exitCode": code, "startedAt": _t(started), "finishedAt": _t(finished)}}
    annotations = {} if index is None else {"batch.kubernetes.io/job-completion-index": str(index)}
    return {
        "metadata": {"name": name, "creationTimestamp": _t(created), "annotations": annotations},
        "spec": {"containers": [{"name": "main", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
        "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": state}]},
    }


@pytest.mark.parametrize(
    ("cpu", "billed"),
    [("1", "1"), ("500m", "0.5"), ("125m", "0.12"), ("0.333", "0.33"), ("10m", "0.01"), ("2", "2")],
)
def test_cpu_is_floored_to_a_hundredth_as_azure_aci_does(cpu: str, billed: str) -> None:
    from shared.base.quantity import parse_cpu

    assert billed_cpu(parse_cpu(cpu)) == Decimal(billed)


@pytest.mark.parametrize(
    ("memory", "gb"),
    [("1Gi", "1.0"), ("1536Mi", "1.6"), ("1G", "1.0"), ("512Mi", "0.5"), ("16Gi", "17.1"), ("100Mi", "0.1")],
)
def test_memory_is_decimal_gb_floored_to_a_tenth(memory: str, gb: str) -> None:
    from shared.base.quantity import parse_memory

    assert billed_memory_gb(parse_memory(memory)) == Decimal(gb)


def test_a_group_sums_its_containers() -> None:
    p = pod("p")
    p["spec"]["containers"].append({"name": "side", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}})
    assert billed_resources(p) == (Decimal("1.25"), Decimal("2.6"))


def test_single_pod_cost_matches_the_hand_computed_value() -> None:
    # 1 vCPU, 1536Mi (= 1.6 GB billed), running 60 s after 10 s pending
    cost = job_cost([pod("p")], prices=PRICES, until=T0 + timedelta(seconds=80))
    assert cost["vcpuSeconds"] == 60.0
    assert cost["gbSeconds"] == 96.0
    # 60 × 0.00001125 + 96 × 0.0000012361 = 0.000675 + 0.0001186656
    assert cost["amount"] == pytest.approx(0.00079367, abs=1e-8)
    assert cost["pendingSeconds"] == 10
    assert cost["billedSeconds"] == 60
    assert cost["containerGroups"] == 1
    assert cost["failedAttempts"] == {"vcpuSeconds": 0.0, "gbSeconds": 0.0, "amount": 0.0, "count": 0}
    assert cost["currency"] == "USD"
    assert cost["indexes"] is None


def test_retries_are_in_the_total_and_reported_on_their_own() -> None:
    pods = [
        pod("a1", started=5, finished=35, phase="Failed"),  # 30 s failed
        pod("a2", created=40, started=60, finished=180, phase="Succeeded"),  # 120 s
    ]
    cost = job_cost(pods, prices=PRICES, until=T0 + timedelta(seconds=200))
    assert cost["vcpuSeconds"] == 150.0
    assert cost["failedAttempts"]["vcpuSeconds"] == 30.0
    assert cost["failedAttempts"]["gbSeconds"] == 48.0
    assert cost["failedAttempts"]["count"] == 1
    assert cost["pendingSeconds"] == 5 + 20


def test_array_cost_is_given_per_index() -> None:
    pods = [
        pod("i0", index=0, cpu="500m", memory="1Gi", started=10, finished=110),  # 0.5 × 100, 1.0 × 100
        pod("i1a", index=1, cpu="500m", memory="1Gi", started=10, finished=20, phase="Failed"),  # 0.5 × 10
        pod("i1b", index=1, cpu="500m", memory="1Gi", started=30, finished=90),  # 0.5 × 60
    ]
    cost = job_cost(pods, prices=PRICES, until=T0 + timedelta(seconds=120))
    assert cost["vcpuSeconds"] == 85.0
    assert cost["gbSeconds"] == 170.0
    assert cost["indexes"] == [
        {"index": 0, "attempts": 1, "vcpuSeconds": 50.0, "gbSeconds": 100.0, "amount": pytest.approx(0.00068611)},
        {"index": 1, "attempts": 2, "vcpuSeconds": 35.0, "gbSeconds": 70.0, "amount": pytest.approx(0.00048028, abs=1e-8)},
    ]


def test_a_group_that_never_started_costs_nothing_but_its_wait_is_reported() -> None:
    cost = job_cost([pod("p", started=None, phase="Failed")], prices=PRICES, until=T0 + timedelta(seconds=900))
    assert cost["amount"] == 0.0
    assert cost["containerGroups"] == 0
    assert cost["pendingSeconds"] == 900


def test_a_group_still_running_at_the_verdict_is_billed_until_it() -> None:
    p = pod("p", started=100, finished=None, phase="Running")
    assert group_window(p, until=T0 + timedelta(seconds=400)) == (T0 + timedelta(seconds=100), T0 + timedelta(seconds=400))
    assert job_cost([p], prices=PRICES, until=T0 + timedelta(seconds=400))["vcpuSeconds"] == 300.0


# --- settings -------------------------------------------------------------------------------


def test_prices_default_to_the_documented_list_price() -> None:
    from shared.config.settings import Settings

    s = Settings.from_env(make_env())
    assert s.prices == PRICES


def test_prices_are_read_from_settings() -> None:
    from shared.config.settings import Settings

    s = Settings.from_env(make_env(VNB_PRICE_VCPU_SECOND="0.00002", VNB_PRICE_GB_SECOND="0", VNB_PRICE_CURRENCY="EUR"))
    assert s.prices == Prices(Decimal("0.00002"), Decimal(0), "EUR")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VNB_PRICE_VCPU_SECOND", "-0.0001"),
        ("VNB_PRICE_VCPU_SECOND", "cheap"),
        ("VNB_PRICE_VCPU_SECOND", "NaN"),
        ("VNB_PRICE_GB_SECOND", "-1"),
        ("VNB_PRICE_GB_SECOND", "1,5"),
        ("VNB_PRICE_GB_SECOND", "Infinity"),
        ("VNB_PRICE_CURRENCY", "dollars"),
        ("VNB_IDLE_STOP_MINUTES", "0"),
        ("VNB_IDLE_STOP_MINUTES", "soon"),
        ("VNB_CLUSTER_START_SECONDS", "-5"),
    ],
)
def test_a_bad_price_or_idle_setting_stops_startup_naming_it(name: str, value: str) -> None:
    from shared.config.settings import Settings

    with pytest.raises(SettingsError) as e:
        Settings.from_env(make_env(**{name: value}))
    assert [n for n, _ in e.value.problems] == [name], e.value
    assert name in str(e.value)


def test_idle_stop_needs_aks_mode() -> None:
    from shared.config.settings import Settings

    with pytest.raises(SettingsError) as e:
        Settings.from_env(make_env(VNB_IDLE_STOP_MINUTES="30"))
    assert "VNB_IDLE_STOP_MINUTES" in {n for n, _ in e.value.problems}
