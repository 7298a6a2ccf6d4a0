"""The network plan: the seed's topology passes (with its documented warning), every rule
that AKS or ACI would enforce later is caught first and names the setting to change."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.cluster.network import (
    AZURE_RESERVED_PER_SUBNET,
    NetworkPlan,
    NetworkPlanInvalid,
    Severity,
    check,
    plan_for,
    plan_from,
    smallest_prefix_for,
    usable_addresses,
    validated,
)
from shared.config.settings import Settings
from tests.conftest import make_env

SEED: dict[str, Any] = {
    "vnet_name": "vnetAks",
    "vnet_cidr": "10.0.0.0/8",
    "cluster_subnet_name": "AksSubnet",
    "cluster_subnet_cidr": "10.240.0.0/16",
    "vnode_subnet_name": "vNodeSubnet",
    "vnode_subnet_cidr": "10.241.0.0/16",
    "service_cidr": "10.0.0.0/16",
    "dns_service_ip": "10.0.0.10",
    "node_count": 1,
    "max_parallelism": 20,
}


def plan(**overrides: Any) -> NetworkPlan:
    return plan_from(**{**SEED, **overrides})


def errors(p: NetworkPlan) -> list[str]:
    return [str(f) for f in check(p) if f.severity is Severity.ERROR]


def test_the_seed_topology_is_valid_with_one_warning_about_the_service_cidr() -> None:
    findings = validated(plan())
    assert [(f.severity, f.setting) for f in findings] == [(Severity.WARNING, "VNB_SERVICE_CIDR")]
    assert "inside the vnet" in findings[0].message
    assert "172.16.0.0/16" in findings[0].message  # a concrete way out


def test_settings_defaults_are_the_seed_topology() -> None:
    settings = Settings.from_env(make_env())
    p = plan_for(settings)
    assert (str(p.vnet), str(p.cluster_subnet), str(p.vnode_subnet)) == ("10.0.0.0/8", "10.240.0.0/16", "10.241.0.0/16")
    assert (str(p.service_cidr), str(p.dns_service_ip)) == ("10.0.0.0/16", "10.0.0.10")
    assert (p.vnet_name, p.cluster_subnet_name, p.vnode_subnet_name) == ("vnetAks", "AksSubnet", "vNodeSubnet")


def test_a_service_cidr_outside_the_vnet_has_no_warning() -> None:
    assert check(plan(service_cidr="172.16.0.0/16", dns_service_ip="172.16.0.10")) == []


# (case, overrides, setting named, words in the message)
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("cluster subnet outside vnet", {"cluster_subnet_cidr": "11.0.0.0/16"}, "VNB_CLUSTER_SUBNET_CIDR", "not inside"),
    ("vnode subnet outside vnet", {"vnode_subnet_cidr": "192.168.0.0/24"}, "VNB_VNODE_SUBNET_CIDR", "not inside"),
    ("subnets overlap", {"vnode_subnet_cidr": "10.240.128.0/17"}, "VNB_VNODE_SUBNET_CIDR", "overlaps"),
    ("same subnet twice", {"vnode_subnet_cidr": "10.240.0.0/16"}, "VNB_VNODE_SUBNET_CIDR", "disjoint"),
    (
        "service cidr on cluster subnet",
        {"service_cidr": "10.240.0.0/16", "dns_service_ip": "10.240.0.10"},
        "VNB_SERVICE_CIDR",
        "VNB_CLUSTER_SUBNET_CIDR",
    ),
    (
        "service cidr on vnode subnet",
        {"service_cidr": "10.241.0.0/24", "dns_service_ip": "10.241.0.10"},
        "VNB_SERVICE_CIDR",
        "VNB_VNODE_SUBNET_CIDR",
    ),
    (
        "service cidr too large",
        {"service_cidr": "172.0.0.0/11", "dns_service_ip": "172.0.0.10"},
        "VNB_SERVICE_CIDR",
        "/12",
    ),
    (
        "service cidr in AKS reserved range",
        {"service_cidr": "169.254.0.0/16", "dns_service_ip": "169.254.0.10"},
        "VNB_SERVICE_CIDR",
        "reserves",
    ),
    (
        "vnet in AKS reserved range",
        {"vnet_cidr": "172.30.0.0/16", "cluster_subnet_cidr": "172.30.0.0/20", "vnode_subnet_cidr": "172.30.16.0/24"},
        "VNB_VNET_CIDR",
        "reserves",
    ),
    ("dns ip outside service cidr", {"dns_service_ip": "10.1.0.10"}, "VNB_DNS_SERVICE_IP", "not inside"),
    ("dns ip is the network address", {"dns_service_ip": "10.0.0.0"}, "VNB_DNS_SERVICE_IP", "network address"),
    ("dns ip is the first address", {"dns_service_ip": "10.0.0.1"}, "VNB_DNS_SERVICE_IP", "kubernetes.default"),
    ("dns ip is the broadcast address", {"dns_service_ip": "10.0.255.255"}, "VNB_DNS_SERVICE_IP", "broadcast"),
    (
        "cluster subnet too small for nodes",
        {"cluster_subnet_cidr": "10.240.0.0/26"},
        "VNB_CLUSTER_SUBNET_CIDR",
        "(VNB_NODE_COUNT=1 + 1",
    ),
    (
        "cluster subnet too small for node count",
        {"cluster_subnet_cidr": "10.240.0.0/24", "node_count": 10},
        "VNB_CLUSTER_SUBNET_CIDR",
        "/23 or larger",
    ),
    ("vnode subnet smaller than /28", {"vnode_subnet_cidr": "10.241.0.0/29"}, "VNB_VNODE_SUBNET_CIDR", "/28"),
    ("same subnet names", {"vnode_subnet_name": "akssubnet"}, "VNB_VNODE_SUBNET_NAME", "pick another name"),
    ("bad subnet name", {"cluster_subnet_name": "-bad"}, "VNB_CLUSTER_SUBNET_NAME", "not a valid Azure network name"),
]


@pytest.mark.parametrize(("case", "overrides", "setting", "words"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_plans_name_the_setting_and_the_fix(
    case: str, overrides: dict[str, Any], setting: str, words: str
) -> None:
    with pytest.raises(NetworkPlanInvalid) as raised:
        validated(plan(**overrides))
    mine = [f for f in raised.value.findings if f.severity is Severity.ERROR and f.setting == setting]
    assert mine, f"{case}: no error for {setting}: {raised.value}"
    assert any(words in f.message for f in mine), f"{case}: {[f.message for f in mine]}"
    assert setting in str(raised.value)


def test_overlap_suggests_a_free_range_inside_the_vnet() -> None:
    [finding] = [f for f in check(plan(vnode_subnet_cidr="10.240.0.0/16")) if f.severity is Severity.ERROR]
    assert "e.g. 10.1.0.0/16" in finding.message  # clear of AksSubnet and of the service CIDR 10.0.0.0/16


def test_a_small_vnode_subnet_warns_when_one_request_could_not_fit() -> None:
    findings = check(plan(vnode_subnet_cidr="10.241.0.0/28", max_parallelism=20))
    warnings = [f for f in findings if f.severity is Severity.WARNING and f.setting == "VNB_VNODE_SUBNET_CIDR"]
    assert warnings
    assert "11 usable addresses" in warnings[0].message
    assert "/27" in warnings[0].message


def test_unparsable_values_name_their_setting() -> None:
    with pytest.raises(NetworkPlanInvalid) as raised:
        plan(vnet_cidr="10.0.0.1/8", dns_service_ip="ten")
    assert {f.setting for f in raised.value.findings} == {"VNB_VNET_CIDR", "VNB_DNS_SERVICE_IP"}


def test_cluster_subnet_rule_matches_the_documented_example() -> None:
    # learn.microsoft.com: 50 nodes, 30 pods -> (51) + (51 * 30) = 1,581 -> a /21 or larger
    p = plan(node_count=50, cluster_subnet_cidr="10.240.0.0/21")
    assert p.cluster_subnet_needs == 1581
    assert smallest_prefix_for(1581) == 21
    assert not errors(p)
    assert errors(plan(node_count=50, cluster_subnet_cidr="10.240.0.0/22"))


@given(prefix=st.integers(min_value=8, max_value=29))
def test_smallest_prefix_is_tight(prefix: int) -> None:
    needed = 2 ** (32 - prefix) - AZURE_RESERVED_PER_SUBNET
    assert smallest_prefix_for(needed) == prefix
    assert usable_addresses(ipaddress.IPv4Network(f"10.0.0.0/{prefix}")) == needed


@given(
    a=st.integers(min_value=0, max_value=255),
    b=st.integers(min_value=0, max_value=255),
    size=st.integers(min_value=16, max_value=28),
)
def test_any_overlap_between_the_subnets_is_an_error(a: int, b: int, size: int) -> None:
    cluster = ipaddress.IPv4Network(f"10.{a}.0.0/16")
    vnode = ipaddress.IPv4Network(f"10.{b}.0.0/{size}")
    p = plan(
        cluster_subnet_cidr=str(cluster),
        vnode_subnet_cidr=str(vnode),
        service_cidr="172.16.0.0/16",
        dns_service_ip="172.16.0.10",
    )
    overlap_errors = [e for e in errors(p) if "overlaps the cluster subnet" in e]
    assert bool(overlap_errors) == cluster.overlaps(vnode)
