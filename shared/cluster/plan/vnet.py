"""Step 2: the vnet and both subnets (with the virtual-node subnet's delegation and egress). Pure."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping
from typing import Any

from shared.base.conventions import ARM_TAGS
from shared.cluster.network import NetworkPlan
from shared.cluster.plan.steps import ACI_DELEGATION, IN_PROGRESS_STATES, Decision, Do, Step

VNODE_SUBNET_EGRESS: dict[str, Any] = {"defaultOutboundAccess": True}


def subnet_entry(name: str, prefix: str, *, egress: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {"addressPrefix": prefix}
    if egress:
        props.update(VNODE_SUBNET_EGRESS)
    return {"name": name, "properties": props}


def subnet_has_egress(subnet: Mapping[str, Any]) -> bool:
    """Whether a subnet as ARM returns it gives ACI container groups a way out: default outbound
    access (``defaultOutboundAccess`` true, or absent on a subnet older than private-by-default),
    a NAT gateway, or a route table (a user-defined route to a firewall is an explicit outbound
    method; its routes are not read here)."""
    props = subnet.get("properties") or {}
    if props.get("natGateway") or props.get("routeTable"):
        return True
    return props.get("defaultOutboundAccess") is not False


_WRITABLE_SUBNET_PROPERTIES = (
    "addressPrefix",
    "addressPrefixes",
    "delegations",
    "networkSecurityGroup",
    "routeTable",
    "natGateway",
    "serviceEndpoints",
    "privateEndpointNetworkPolicies",
    "privateLinkServiceNetworkPolicies",
)


def subnet_with_egress(subnet: Mapping[str, Any]) -> dict[str, Any]:
    """The PUT body that keeps an observed subnet as it is and turns default outbound access on
    (a subnet PUT replaces the subnet: every writable property is carried over)."""
    props = subnet.get("properties") or {}
    kept = {k: copy.deepcopy(props[k]) for k in _WRITABLE_SUBNET_PROPERTIES if props.get(k) is not None}
    kept["delegations"] = [
        {"name": d.get("name"), "properties": {"serviceName": (d.get("properties") or {}).get("serviceName")}}
        for d in kept.get("delegations") or []
    ]
    return {"properties": {**kept, **VNODE_SUBNET_EGRESS}}


def vnet_body(plan: NetworkPlan, location: str) -> dict[str, Any]:
    """The vnet WITH both subnets: a vnet PUT replaces its subnet list, so it never goes without them.

    The virtual-node subnet is left undelegated: the addon delegates it to ACI itself, as in
    the documented flow, and a pre-existing ACI delegation is accepted too.
    """
    return {
        "location": location,
        "tags": dict(ARM_TAGS),
        "properties": {
            "addressSpace": {"addressPrefixes": [str(plan.vnet)]},
            "subnets": [
                subnet_entry(plan.cluster_subnet_name, str(plan.cluster_subnet)),
                subnet_entry(plan.vnode_subnet_name, str(plan.vnode_subnet), egress=True),
            ],
        },
    }


def _subnet_prefix(subnet: Mapping[str, Any]) -> str | None:
    props = subnet.get("properties") or {}
    prefix = props.get("addressPrefix") or next(iter(props.get("addressPrefixes") or []), None)
    return str(prefix) if prefix else None


def _delegations(subnet: Mapping[str, Any]) -> list[str]:
    out = []
    for d in (subnet.get("properties") or {}).get("delegations") or []:
        service = (d.get("properties") or {}).get("serviceName") or d.get("serviceName")
        if service:
            out.append(str(service))
    return out


def _v4(prefix: object) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.ip_network(str(prefix), strict=False)
    except ValueError:
        return None
    return net if isinstance(net, ipaddress.IPv4Network) else None


def decide_network(vnet: Mapping[str, Any] | None, plan: NetworkPlan, location: str | None) -> Decision:
    """Create the vnet with both subnets; or add a missing subnet ALONE to an existing vnet."""
    step = Step.NETWORK
    if vnet is None:
        return Decision(
            step,
            Do.CREATE,
            f"vnet {plan.vnet_name} {plan.vnet} with subnets {plan.cluster_subnet_name} {plan.cluster_subnet} and "
            f"{plan.vnode_subnet_name} {plan.vnode_subnet} does not exist: create it",
            "vnet",
            vnet_body(plan, location or ""),
        )
    props = vnet.get("properties") or {}
    state = str(props.get("provisioningState") or "Succeeded")
    if state.lower() in IN_PROGRESS_STATES:
        return Decision(step, Do.WAIT, f"vnet {plan.vnet_name} is {state}", "vnet")
    if state.lower() == "failed":
        return Decision(
            step,
            Do.BLOCKED,
            f"vnet {plan.vnet_name} is in provisioningState Failed: look at the resource group's activity log, fix or "
            "delete the vnet, then send work again",
            "vnet",
        )
    space = [_v4(p) for p in (props.get("addressSpace") or {}).get("addressPrefixes") or []]
    existing = {str(s.get("name", "")).lower(): s for s in props.get("subnets") or []}
    wanted = (
        ("VNB_CLUSTER_SUBNET_CIDR", "VNB_CLUSTER_SUBNET_NAME", plan.cluster_subnet_name, plan.cluster_subnet, True),
        ("VNB_VNODE_SUBNET_CIDR", "VNB_VNODE_SUBNET_NAME", plan.vnode_subnet_name, plan.vnode_subnet, False),
    )
    for cidr_setting, name_setting, name, prefix, is_cluster in wanted:
        found = existing.get(name.lower())
        if found is None:
            continue
        have = _subnet_prefix(found)
        if have != str(prefix):
            return Decision(
                step,
                Do.BLOCKED,
                f"subnet {name} of vnet {plan.vnet_name} exists with address prefix {have}, but {cidr_setting} says "
                f"{prefix}: set {cidr_setting}={have}, or use another subnet ({name_setting}); an address prefix "
                "cannot change while the subnet is in use",
                f"subnet:{name}",
            )
        delegated = _delegations(found)
        if is_cluster and delegated:
            return Decision(
                step,
                Do.BLOCKED,
                f"subnet {name} is delegated to {', '.join(delegated)}; AKS nodes cannot use a delegated subnet: remove "
                f"the delegation or choose another subnet ({name_setting}, {cidr_setting})",
                f"subnet:{name}",
            )
        foreign = [d for d in delegated if d.lower() != ACI_DELEGATION.lower()]
        if not is_cluster and foreign:
            return Decision(
                step,
                Do.BLOCKED,
                f"subnet {name} is delegated to {', '.join(foreign)}; the virtual node needs it undelegated or delegated "
                f"to {ACI_DELEGATION}: remove the delegation or choose another subnet ({name_setting}, {cidr_setting})",
                f"subnet:{name}",
            )
        sub_state = str((found.get("properties") or {}).get("provisioningState") or "Succeeded")
        if sub_state.lower() in IN_PROGRESS_STATES:
            return Decision(step, Do.WAIT, f"subnet {name} is {sub_state}", f"subnet:{name}")
        if not is_cluster and not subnet_has_egress(found):
            if (vnet.get("tags") or {}).get("managed-by") == ARM_TAGS["managed-by"]:
                return Decision(
                    step,
                    Do.UPDATE,
                    f"subnet {name} is private (defaultOutboundAccess false, no NAT gateway): the virtual node's pods "
                    "would have no internet egress; turn default outbound access on",
                    f"subnet:{name}",
                    subnet_with_egress(found),
                )
            return Decision(
                step,
                Do.BLOCKED,
                f"subnet {name} of vnet {plan.vnet_name} is private (defaultOutboundAccess false, no NAT gateway or "
                "route table): the virtual node's pods would have no internet egress. Attach a NAT gateway, or run "
                f"`az network vnet subnet update --vnet-name {plan.vnet_name} -n {name} -g <group> "
                "--default-outbound-access true` (the vnet is not the app's, so the app does not change it)",
                f"subnet:{name}",
            )
    for cidr_setting, name_setting, name, prefix, is_cluster in wanted:
        if name.lower() in existing:
            continue
        if not any(s is not None and prefix.subnet_of(s) for s in space):
            return Decision(
                step,
                Do.BLOCKED,
                f"vnet {plan.vnet_name} exists with address space {', '.join(str(s) for s in space if s) or '(none)'}, which "
                f"does not contain {cidr_setting}={prefix}: add the range to the vnet or change {cidr_setting}",
                f"subnet:{name}",
            )
        for other in existing.values():
            other_prefix = _subnet_prefix(other)
            other_net = _v4(other_prefix) if other_prefix else None
            if other_net is not None and prefix.overlaps(other_net):
                return Decision(
                    step,
                    Do.BLOCKED,
                    f"{cidr_setting}={prefix} overlaps subnet {other.get('name')} ({other_prefix}) that already exists "
                    f"in vnet {plan.vnet_name}: choose a free range for {name_setting}={name}",
                    f"subnet:{name}",
                )
        return Decision(
            step,
            Do.CREATE,
            f"vnet {plan.vnet_name} exists without subnet {name}: create the subnet on its own (a vnet PUT would "
            "replace the vnet's subnet list)",
            f"subnet:{name}",
            {"properties": subnet_entry(name, str(prefix), egress=not is_cluster)["properties"]},
        )
    return Decision(
        step,
        Do.NOTHING,
        f"vnet {plan.vnet_name} with {plan.cluster_subnet_name} {plan.cluster_subnet} and {plan.vnode_subnet_name} "
        f"{plan.vnode_subnet}",
        "vnet",
    )
