"""``python -m shared.cli plan`` refuses an invalid network plan before any ARM call: exit 2,
each error naming its app setting. (No ARM endpoint exists in these tests: reaching ARM would
fail differently.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.cli import main as cli
from tests.conftest import make_env
from tests.unit.cluster.test_network import INVALID

_ALIASES = {
    "vnet_name": "VNB_VNET_NAME",
    "vnet_cidr": "VNB_VNET_CIDR",
    "cluster_subnet_name": "VNB_CLUSTER_SUBNET_NAME",
    "cluster_subnet_cidr": "VNB_CLUSTER_SUBNET_CIDR",
    "vnode_subnet_name": "VNB_VNODE_SUBNET_NAME",
    "vnode_subnet_cidr": "VNB_VNODE_SUBNET_CIDR",
    "service_cidr": "VNB_SERVICE_CIDR",
    "dns_service_ip": "VNB_DNS_SERVICE_IP",
    "node_count": "VNB_NODE_COUNT",
}
AKS = {
    "VNB_CLUSTER_MODE": "aks",
    "VNB_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "VNB_RESOURCE_GROUP": "rg-aks",
    "VNB_APP_PRINCIPAL_ID": "11111111-1111-1111-1111-111111111111",
    # unreachable on purpose: a plan that got past validation would fail loudly, not exit 2
    "VNB_ARM_ENDPOINT": "https://127.0.0.1:9",
}

# settings-level mistakes (values that are not CIDRs at all) also count as an invalid plan
MALFORMED: list[tuple[str, dict[str, str], str]] = [
    ("host bits set", {"VNB_VNET_CIDR": "10.0.0.1/8"}, "VNB_VNET_CIDR"),
    ("not an ip", {"VNB_DNS_SERVICE_IP": "10.0.0"}, "VNB_DNS_SERVICE_IP"),
    ("ipv6 service cidr", {"VNB_SERVICE_CIDR": "fd00::/108"}, "VNB_SERVICE_CIDR"),
]

CASES: list[tuple[str, dict[str, str], str]] = [
    (case, {_ALIASES[k]: str(v) for k, v in overrides.items()}, setting) for case, overrides, setting, _ in INVALID
] + MALFORMED


@pytest.fixture
def run_plan(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.chdir(tmp_path)  # no local.settings.json here: the environment is the whole story

    def run(env: dict[str, str]) -> int:
        for key in list(make_env()) + list(AKS) + list(_ALIASES.values()):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return cli.main(["plan"])

    return run


def test_there_are_at_least_eight_cases() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize(("case", "overrides", "setting"), CASES, ids=[c[0] for c in CASES])
def test_plan_rejects_invalid_networks_naming_the_setting(
    run_plan: Any, capsys: pytest.CaptureFixture[str], case: str, overrides: dict[str, str], setting: str
) -> None:
    code = run_plan(make_env(**AKS, **overrides))
    out = capsys.readouterr()
    assert code == 2, f"{case}: {out.err}"
    assert setting in out.err
    assert "plan for cluster" not in out.out  # stopped before looking at ARM


def test_plan_prints_the_seed_warning_and_needs_aks_mode(run_plan: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_plan(make_env()) == 2  # kubeconfig mode: nothing to plan
    assert "nothing to bootstrap" in capsys.readouterr().err
