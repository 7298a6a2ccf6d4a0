"""The cluster's network plan: vnet, both subnets, service CIDR and DNS service IP. Pure.

Built from the settings and validated before any ARM call, because every mistake here is
expensive later: AKS refuses some of them only after minutes of provisioning, and others
(a subnet too small for Azure CNI, a virtual-node subnet too small for ACI) are accepted and
fail at the first scale-out or the first burst of pods. Each finding names the app setting
to change and how.

Rules and where they come from (learn.microsoft.com, checked 2026; see docs/bootstrap.md):

- Both subnets inside the vnet, disjoint, with different names.
- Service CIDR overlapping no subnet (AKS: ServiceCidrOverlapExistingSubnetsCidr), at most a
  /12, and outside the ranges AKS reserves (169.254.0.0/16, 172.30.0.0/16, 172.31.0.0/16,
  192.0.2.0/24), as are the vnet and subnets. One concept page is stricter: the service CIDR
  should not be inside the vnet's address space at all. The seed's own defaults (10.0.0.0/16
  inside 10.0.0.0/8) break that rule and work, so it is a WARNING here, not an error.
- DNS service IP inside the service CIDR, and not its network address, its broadcast address
  or its first host address (``.1`` is taken by ``kubernetes.default``).
- Cluster subnet (flat Azure CNI, "node subnet"): every node and every pod takes a vnet IP,
  and an upgrade adds a surge node. Minimum addresses =
  ``(VNB_NODE_COUNT + 1 surge) × (30 max pods + 1 node IP)``, against the subnet's usable
  addresses (Azure keeps 5 per subnet). The bootstrap pins ``maxPods`` to 30 so the rule holds.
- Virtual-node subnet: one IP per ACI container group (pod). The ACI docs warn that a /29
  (3 usable addresses) gets container groups stuck and recommend at least a /28: error above
  /28; a WARNING when fewer addresses remain than ``VNB_MAX_PARALLELISM`` pods of one request.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from shared.base.errors import PermanentError
from shared.config.settings import Settings

AZURE_RESERVED_PER_SUBNET = 5
"""Azure keeps the first four addresses and the last one of every subnet."""
MAX_PODS_PER_NODE = 30
"""Azure CNI's default ``maxPods``; the bootstrap sets it explicitly so the sizing rule holds."""
SURGE_NODES = 1
"""The extra node an upgrade adds (AKS's default max surge)."""
VNODE_MAX_PREFIX = 28
"""Smallest virtual-node subnet (a /28: 11 usable addresses), per the ACI vnet deployment docs."""
SERVICE_CIDR_MIN_PREFIX = 12
"""AKS: the service address range must not be larger than a /12."""
AKS_RESERVED_RANGES: tuple[IPv4Network, ...] = tuple(
    IPv4Network(n) for n in ("169.254.0.0/16", "172.30.0.0/16", "172.31.0.0/16", "192.0.2.0/24")
)
"""Ranges AKS refuses for the service CIDR and for the cluster's virtual network."""

_SUBNET_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,78}[A-Za-z0-9_])?")
_SERVICE_CIDR_CANDIDATES = ("10.0.0.0/16", "172.16.0.0/16", "192.168.0.0/16", "100.64.0.0/16")


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem with the plan: which setting to change, what is wrong and what to do."""

    severity: Severity
    setting: str
    message: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}"


@dataclass(frozen=True)
class NetworkPlan:
    """The network the bootstrap creates (or expects to find) in the cluster resource group."""

    vnet_name: str
    vnet: IPv4Network
    cluster_subnet_name: str
    cluster_subnet: IPv4Network
    vnode_subnet_name: str
    vnode_subnet: IPv4Network
    service_cidr: IPv4Network
    dns_service_ip: IPv4Address
    node_count: int
    max_parallelism: int = 1

    @property
    def cluster_subnet_needs(self) -> int:
        """Addresses the cluster subnet must offer (see the module docstring)."""
        return (self.node_count + SURGE_NODES) * (MAX_PODS_PER_NODE + 1)


class NetworkPlanInvalid(PermanentError):
    """The settings describe a network AKS or ACI would refuse; fix the named settings.

    Retrying cannot help: the request waiting for the cluster is dead-lettered, ``plan``
    exits with 2.
    """

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        errors = [f for f in self.findings if f.severity is Severity.ERROR]
        lines = "; ".join(str(f) for f in errors)
        super().__init__(f"invalid network plan ({len(errors)} setting(s) to fix): {lines}")


def usable_addresses(net: IPv4Network) -> int:
    """Addresses Azure lets resources use in a subnet of this size."""
    return max(0, net.num_addresses - AZURE_RESERVED_PER_SUBNET)


def smallest_prefix_for(addresses: int) -> int:
    """The longest prefix whose subnet still offers ``addresses`` usable addresses."""
    for prefix in range(29, 0, -1):
        if 2 ** (32 - prefix) - AZURE_RESERVED_PER_SUBNET >= addresses:
            return prefix
    return 1


def plan_from(
    *,
    vnet_name: str,
    vnet_cidr: str,
    cluster_subnet_name: str,
    cluster_subnet_cidr: str,
    vnode_subnet_name: str,
    vnode_subnet_cidr: str,
    service_cidr: str,
    dns_service_ip: str,
    node_count: int,
    max_parallelism: int = 1,
) -> NetworkPlan:
    """Parse the values (``Settings`` has already checked that each one is a CIDR or an IP).

    Raises NetworkPlanInvalid naming the setting when a value does not parse, so callers
    that bypass ``Settings`` get the same kind of answer.
    """
    findings: list[Finding] = []

    def net(setting: str, value: str) -> IPv4Network:
        try:
            return IPv4Network(value, strict=True)
        except ValueError as e:
            findings.append(
                Finding(Severity.ERROR, setting, f"{value!r} is not an IPv4 CIDR with host bits zero ({e})")
            )
            return IPv4Network((0, 32))

    vnet = net("VNB_VNET_CIDR", vnet_cidr)
    cluster = net("VNB_CLUSTER_SUBNET_CIDR", cluster_subnet_cidr)
    vnode = net("VNB_VNODE_SUBNET_CIDR", vnode_subnet_cidr)
    service = net("VNB_SERVICE_CIDR", service_cidr)
    try:
        dns = IPv4Address(dns_service_ip)
    except ValueError as e:
        findings.append(
            Finding(Severity.ERROR, "VNB_DNS_SERVICE_IP", f"{dns_service_ip!r} is not an IPv4 address ({e})")
        )
        dns = IPv4Address(0)
    if findings:
        raise NetworkPlanInvalid(findings)
    return NetworkPlan(
        vnet_name=vnet_name,
        vnet=vnet,
        cluster_subnet_name=cluster_subnet_name,
        cluster_subnet=cluster,
        vnode_subnet_name=vnode_subnet_name,
        vnode_subnet=vnode,
        service_cidr=service,
        dns_service_ip=dns,
        node_count=node_count,
        max_parallelism=max_parallelism,
    )


def plan_for(settings: Settings) -> NetworkPlan:
    """The plan the settings describe (not yet checked: see :func:`validated`)."""
    return plan_from(
        vnet_name=settings.vnet_name,
        vnet_cidr=settings.vnet_cidr,
        cluster_subnet_name=settings.cluster_subnet_name,
        cluster_subnet_cidr=settings.cluster_subnet_cidr,
        vnode_subnet_name=settings.vnode_subnet_name,
        vnode_subnet_cidr=settings.vnode_subnet_cidr,
        service_cidr=settings.service_cidr,
        dns_service_ip=settings.dns_service_ip,
        node_count=settings.node_count,
        max_parallelism=settings.max_parallelism,
    )


def check(plan: NetworkPlan) -> list[Finding]:
    """Every error and warning of the plan, errors first; empty when all is well."""
    found: list[Finding] = []

    def error(setting: str, message: str) -> None:
        found.append(Finding(Severity.ERROR, setting, message))

    def warn(setting: str, message: str) -> None:
        found.append(Finding(Severity.WARNING, setting, message))

    # names
    for setting, name in (
        ("VNB_VNET_NAME", plan.vnet_name),
        ("VNB_CLUSTER_SUBNET_NAME", plan.cluster_subnet_name),
        ("VNB_VNODE_SUBNET_NAME", plan.vnode_subnet_name),
    ):
        if not _SUBNET_NAME.fullmatch(name):
            error(
                setting,
                f"{name!r} is not a valid Azure network name: 1-80 letters, digits, '.', '-' or '_', "
                "starting with a letter or digit and ending with a letter, digit or '_'",
            )
    if plan.cluster_subnet_name.lower() == plan.vnode_subnet_name.lower():
        error(
            "VNB_VNODE_SUBNET_NAME",
            f"{plan.vnode_subnet_name!r} is also the cluster subnet's name (VNB_CLUSTER_SUBNET_NAME): the virtual "
            "node needs a subnet of its own (it is delegated to Azure Container Instances); pick another name",
        )

    # containment and overlaps
    subnets = (
        ("VNB_CLUSTER_SUBNET_CIDR", plan.cluster_subnet),
        ("VNB_VNODE_SUBNET_CIDR", plan.vnode_subnet),
    )
    for setting, subnet in subnets:
        if not subnet.subnet_of(plan.vnet):
            error(
                setting,
                f"{subnet} is not inside the vnet's address space VNB_VNET_CIDR={plan.vnet}: choose a range inside "
                f"it{_suggest_free(plan.vnet, subnet.prefixlen, [s for _, s in subnets if s is not subnet])}, "
                "or widen VNB_VNET_CIDR",
            )
    if plan.cluster_subnet.overlaps(plan.vnode_subnet):
        free = _suggest_free(plan.vnet, plan.vnode_subnet.prefixlen, [plan.cluster_subnet, plan.service_cidr])
        error(
            "VNB_VNODE_SUBNET_CIDR",
            f"{plan.vnode_subnet} overlaps the cluster subnet VNB_CLUSTER_SUBNET_CIDR={plan.cluster_subnet}: "
            f"the subnets must be disjoint; choose another range{free}",
        )
    for setting, net in (("VNB_VNET_CIDR", plan.vnet), ("VNB_SERVICE_CIDR", plan.service_cidr)):
        for reserved in AKS_RESERVED_RANGES:
            if net.overlaps(reserved):
                error(setting, f"{net} overlaps {reserved}, which AKS reserves; choose another range")

    # service CIDR
    service = plan.service_cidr
    for setting, subnet in subnets:
        if service.overlaps(subnet):
            error(
                "VNB_SERVICE_CIDR",
                f"{service} overlaps {setting}={subnet}: Kubernetes service addresses must not collide with vnet "
                f"addresses; use a range outside the subnets{_suggest_service(plan)} and move VNB_DNS_SERVICE_IP into it",
            )
    if service.prefixlen < SERVICE_CIDR_MIN_PREFIX:
        error(
            "VNB_SERVICE_CIDR",
            f"{service} is larger than AKS allows (at most a /{SERVICE_CIDR_MIN_PREFIX}); a /16 is plenty",
        )
    if service.overlaps(plan.vnet) and not any(service.overlaps(s) for _, s in subnets):
        warn(
            "VNB_SERVICE_CIDR",
            f"{service} lies inside the vnet's address space VNB_VNET_CIDR={plan.vnet}. It overlaps no subnet, which "
            "is what AKS checks, but the AKS networking concepts page asks for a range outside the vnet so that no "
            f"subnet added later can collide with it; consider a range outside the vnet{_suggest_service(plan)}. (The "
            "seed's defaults do this.)",
        )

    # DNS service IP
    dns = plan.dns_service_ip
    if dns not in service:
        error(
            "VNB_DNS_SERVICE_IP",
            f"{dns} is not inside VNB_SERVICE_CIDR={service}: use an address in it, e.g. {service.network_address + 10}",
        )
    elif dns in (service.network_address, service.broadcast_address):
        error(
            "VNB_DNS_SERVICE_IP",
            f"{dns} is the {'network' if dns == service.network_address else 'broadcast'} address of "
            f"VNB_SERVICE_CIDR={service}: use a host address, e.g. {service.network_address + 10}",
        )
    elif dns == service.network_address + 1:
        error(
            "VNB_DNS_SERVICE_IP",
            f"{dns} is the first address of VNB_SERVICE_CIDR={service}, which kubernetes.default takes: use "
            f"another, e.g. {service.network_address + 10}",
        )

    # sizes
    needs = plan.cluster_subnet_needs
    have = usable_addresses(plan.cluster_subnet)
    if have < needs:
        error(
            "VNB_CLUSTER_SUBNET_CIDR",
            f"{plan.cluster_subnet} offers {have} usable addresses but Azure CNI needs (VNB_NODE_COUNT={plan.node_count} "
            f"+ {SURGE_NODES} upgrade surge node) × ({MAX_PODS_PER_NODE} pods + 1) = {needs}: use a "
            f"/{smallest_prefix_for(needs)} or larger, or lower VNB_NODE_COUNT",
        )
    if plan.vnode_subnet.prefixlen > VNODE_MAX_PREFIX:
        error(
            "VNB_VNODE_SUBNET_CIDR",
            f"{plan.vnode_subnet} leaves {usable_addresses(plan.vnode_subnet)} usable addresses; each virtual-node pod "
            f"is an ACI container group with its own address and ACI asks for at least a /{VNODE_MAX_PREFIX}: "
            f"use a /{VNODE_MAX_PREFIX} or larger",
        )
    elif usable_addresses(plan.vnode_subnet) < plan.max_parallelism:
        warn(
            "VNB_VNODE_SUBNET_CIDR",
            f"{plan.vnode_subnet} has {usable_addresses(plan.vnode_subnet)} usable addresses, fewer than "
            f"VNB_MAX_PARALLELISM={plan.max_parallelism} pods of a single request: pods beyond that stay Pending; "
            f"use a /{smallest_prefix_for(plan.max_parallelism)} or larger",
        )
    found.sort(key=lambda f: f.severity is not Severity.ERROR)
    return found


def validated(plan: NetworkPlan) -> list[Finding]:
    """The plan's warnings; raises NetworkPlanInvalid (listing every error) if it has errors."""
    findings = check(plan)
    if any(f.severity is Severity.ERROR for f in findings):
        raise NetworkPlanInvalid(findings)
    return findings


def _suggest_free(vnet: IPv4Network, prefixlen: int, taken: Iterable[IPv4Network]) -> str:
    """ ", e.g. 10.242.0.0/16" — the first block of that size in the vnet clear of ``taken``."""
    taken = list(taken)
    if prefixlen < vnet.prefixlen:
        return ""
    for index, candidate in enumerate(vnet.subnets(new_prefix=prefixlen)):
        if index > 4096:
            break
        if not any(candidate.overlaps(t) for t in taken):
            return f", e.g. {candidate}"
    return ""


def _suggest_service(plan: NetworkPlan) -> str:
    for text in _SERVICE_CIDR_CANDIDATES:
        candidate = ipaddress.IPv4Network(text)
        if not candidate.overlaps(plan.vnet):
            return f" such as {candidate} (DNS {candidate.network_address + 10})"
    return ""
