"""``Microsoft.Network`` as the ARM stand-in serves it: virtual networks and subnets (address
layout, delegations, default outbound access) as long-running PUT/DELETE."""

from __future__ import annotations

import copy
import ipaddress
import uuid
from collections.abc import Callable
from typing import Any

from devtools.standins.arm.catalog import (
    ACI_DELEGATION_SERVICE,
    ArmError,
    networks_overlap,
    parse_network,
    within,
)
from devtools.standins.arm.common import (
    _Ctx,
    _key,
    _Result,
)

PRIVATE_SUBNETS_FROM = "2025-07-01"
"""Network api-version from which a new subnet is private unless it says otherwise: "Starting
with API version 2025-07-01 ... Subnets in newly created VNets are private by default. The
subnet property ``defaultOutboundAccess`` is set to false" (Azure Networking Blog, "Private
subnets by default in Azure virtual networks", techcommunity.microsoft.com, 2026); existing
subnets are unchanged (same post, "Existing VNets or VMs using DOA: Unchanged")."""


def _default_outbound_access(
    props: dict[str, Any], existing: dict[str, Any] | None, api_version: str | None
) -> bool | None:
    """``defaultOutboundAccess`` of a subnet after a PUT: what the body says; else, for an
    existing subnet, what it had (the docs are silent on a PUT that omits it; keeping the value
    follows "existing VNets unchanged"); else false from :data:`PRIVATE_SUBNETS_FROM`, and
    absent (null: default outbound access) before it."""
    if isinstance(props.get("defaultOutboundAccess"), bool):
        return bool(props["defaultOutboundAccess"])
    if existing is not None:
        kept = existing.get("properties", {}).get("defaultOutboundAccess")
        return kept if isinstance(kept, bool) else None
    if api_version and api_version[:10] >= PRIVATE_SUBNETS_FROM:
        return False
    return None


def subnet_egress(subnet: dict[str, Any]) -> bool:
    """Whether container groups in a subnet reach the internet: default outbound access (not
    false), or an explicit method, a NAT gateway or a route table (a UDR to a firewall; its
    routes are not modelled). Sources: learn.microsoft.com virtual-network/ip-services/
    default-outbound-access ("explicit outbound connectivity" methods); for ACI in a private
    subnet, ../shared/reference/virtual-node.md (egress needs the opt-in or a NAT gateway)."""
    props = subnet.get("properties") or {}
    if props.get("natGateway") or props.get("routeTable"):
        return True
    return props.get("defaultOutboundAccess") is not False


class Network:
    """virtualNetworks and subnets; ``has_egress`` answers for a subnet (``subnet_egress``)."""

    def has_egress(self, subnet_id: str) -> bool:
        """Whether container groups placed in this subnet would reach the internet (:func:`subnet_egress`)."""
        found = self.get(subnet_id)
        return found is not None and subnet_egress(found)

    # ------------------------------------------------------------------ network
    def _vnet_id(self, g: dict[str, str]) -> str:
        rg = self._rg(g["rg"])
        return f"{rg['id']}/providers/Microsoft.Network/virtualNetworks/{g['vnet']}"

    def _vnet(self, g: dict[str, str]) -> dict[str, Any]:
        vid = self._vnet_id(g)
        v = self._vnets.get(_key(vid))
        if v is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Network/virtualNetworks/{g['vnet']}' under resource group '{g['rg']}' "
                "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        return v

    @staticmethod
    def _subnet_in(vnet: dict[str, Any], name: str) -> dict[str, Any] | None:
        subnets: list[dict[str, Any]] = vnet["properties"]["subnets"]
        for s in subnets:
            if s["name"].lower() == name.lower():
                return s  # the live dict (callers mutate it under the lock)
        return None

    def _subnet_users(self, subnet_id: str) -> list[str]:
        """Ids of things using a subnet (AKS agent pools, the ACI connector's service association link)."""
        users = []
        for c in self._clusters.values():
            for pool in c["properties"].get("agentPoolProfiles") or []:
                if pool.get("vnetSubnetID") and _key(pool["vnetSubnetID"]) == _key(subnet_id):
                    users.append(f"{c['id']}/agentPools/{pool.get('name')}")
        s = self._find(subnet_id)
        if s:
            users.extend(link["id"] for link in s["properties"].get("serviceAssociationLinks") or [])
        return users

    def _delegations(self, subnet_id: str, raw: Any) -> list[dict[str, Any]]:
        out = []
        for i, d in enumerate(raw or []):
            props = (d or {}).get("properties") or {}
            service = props.get("serviceName")
            name = (d or {}).get("name") or f"delegation{i}"
            if not service:
                raise ArmError(
                    400, "InvalidRequestFormat", f"Delegation {name} of subnet {subnet_id} has no serviceName."
                )
            out.append(
                {
                    "name": name,
                    "id": f"{subnet_id}/delegations/{name}",
                    "etag": f'W/"{uuid.uuid4()}"',
                    "type": "Microsoft.Network/virtualNetworks/subnets/delegations",
                    "properties": {
                        "serviceName": service,
                        "actions": ["Microsoft.Network/virtualNetworks/subnets/action"],
                        "provisioningState": "Succeeded",
                    },
                }
            )
        return out

    def _build_subnet(
        self, vnet_id: str, raw: Any, existing: dict[str, Any] | None, state: str, api_version: str | None = None
    ) -> tuple[dict[str, Any], ipaddress.IPv4Network | ipaddress.IPv6Network]:
        if not isinstance(raw, dict) or not raw.get("name"):
            raise ArmError(400, "InvalidRequestFormat", f"A subnet of {vnet_id} has no name.")
        name = raw["name"]
        sid = f"{vnet_id}/subnets/{name}"
        props = raw.get("properties") or {}
        prefix = props.get("addressPrefix") or (props.get("addressPrefixes") or [None])[0]
        if prefix is None:
            raise ArmError(
                400,
                "SubnetMissingAddressPrefix",
                f"Subnet {name} in virtual network {vnet_id.rsplit('/', 1)[-1]} has no address prefix.",
            )
        net = parse_network(prefix, resource=sid)
        delegations = self._delegations(sid, props.get("delegations"))
        sals = (existing or {}).get("properties", {}).get("serviceAssociationLinks") or []
        if existing is not None:
            users = self._subnet_users(sid)
            if users and existing["properties"]["addressPrefix"] != str(net):
                raise ArmError(
                    400,
                    "InUseSubnetCannotBeUpdated",
                    f"Subnet {name} is in use and cannot be updated (address prefix change). Used by: {', '.join(users)}.",
                )
            if sals and not any(d["properties"]["serviceName"] == ACI_DELEGATION_SERVICE for d in delegations):
                raise ArmError(
                    400,
                    "SubnetMissingRequiredDelegation",
                    f"Subnet {sid} requires any of the following delegation(s) [{ACI_DELEGATION_SERVICE}] to "
                    f"reference service association link {sals[0]['id']}.",
                )
        subnet: dict[str, Any] = {
            "id": sid,
            "name": name,
            "etag": f'W/"{uuid.uuid4()}"',
            "type": "Microsoft.Network/virtualNetworks/subnets",
            "properties": {
                "provisioningState": state,
                "addressPrefix": str(net),
                "delegations": delegations,
                "privateEndpointNetworkPolicies": props.get("privateEndpointNetworkPolicies", "Disabled"),
                "privateLinkServiceNetworkPolicies": props.get("privateLinkServiceNetworkPolicies", "Enabled"),
            },
        }
        outbound = _default_outbound_access(props, existing, api_version)
        if outbound is not None:
            subnet["properties"]["defaultOutboundAccess"] = outbound
        if sals:
            subnet["properties"]["serviceAssociationLinks"] = sals
        for passthrough in ("routeTable", "networkSecurityGroup", "natGateway", "serviceEndpoints"):
            if props.get(passthrough) is not None:
                subnet["properties"][passthrough] = props[passthrough]
        return subnet, net

    @staticmethod
    def _check_subnet_layout(
        vnet_name: str,
        space: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
        subnets: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]],
    ) -> None:
        for i, (name, net) in enumerate(subnets):
            if not any(within(net, s) for s in space):
                raise ArmError(
                    400,
                    "NetcfgInvalidSubnet",
                    f"Subnet '{name}' is not valid in virtual network '{vnet_name}'.",
                )
            for other_name, other in subnets[:i]:
                if networks_overlap(net, other):
                    raise ArmError(
                        400,
                        "NetcfgSubnetRangesOverlap",
                        f"Subnet '{name}' is not valid because its IP address range overlaps with that of an "
                        f"existing subnet '{other_name}' in virtual network '{vnet_name}'.",
                    )

    def _finish_network(self, key: str, subnet_name: str | None) -> Callable[[], tuple[None, list[Callable[[], None]]]]:
        def complete() -> tuple[None, list[Callable[[], None]]]:
            v = self._vnets.get(key)
            if v is not None:
                if subnet_name is None:
                    v["properties"]["provisioningState"] = "Succeeded"
                    for s in v["properties"]["subnets"]:
                        s["properties"]["provisioningState"] = "Succeeded"
                else:
                    s = self._subnet_in(v, subnet_name)
                    if s is not None:
                        s["properties"]["provisioningState"] = "Succeeded"
            return None, []

        return complete

    def _vnet_list(self, ctx: _Ctx) -> _Result:
        with self._lock:
            prefix = _key(self._rg(ctx.g["rg"])["id"]) + "/"
            return 200, {}, {"value": [copy.deepcopy(v) for k, v in self._vnets.items() if k.startswith(prefix)]}

    def _vnet_get(self, ctx: _Ctx) -> _Result:
        with self._lock:
            return 200, {}, copy.deepcopy(self._vnet(ctx.g))

    def _vnet_put(self, ctx: _Ctx) -> _Result:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        with self._lock:
            vid = self._vnet_id(ctx.g)
            key = _key(vid)
            existing = self._vnets.get(key)
            name = existing["name"] if existing else ctx.g["vnet"]
            vid = existing["id"] if existing else vid
            location = body.get("location")
            if not location:
                raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
            props = body.get("properties") or {}
            raw_space = (props.get("addressSpace") or {}).get("addressPrefixes") or []
            if not raw_space:
                raise ArmError(400, "InvalidAddressSpace", f"Virtual network {name} must have an address space.")
            space = [parse_network(p, resource=vid) for p in raw_space]
            state = "Updating"
            new_subnets: list[dict[str, Any]] = []
            layout: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
            seen: set[str] = set()
            for raw in props.get("subnets") or []:  # absent == empty list: ARM deletes existing subnets
                old = self._subnet_in(existing, raw.get("name", "")) if existing and isinstance(raw, dict) else None
                subnet, net = self._build_subnet(vid, raw, old, state, ctx.params.get("api-version"))
                if subnet["name"].lower() in seen:
                    raise ArmError(400, "InvalidRequestFormat", f"Subnet {subnet['name']} appears twice.")
                seen.add(subnet["name"].lower())
                new_subnets.append(subnet)
                layout.append((subnet["name"], net))
            self._check_subnet_layout(name, space, layout)
            if existing:
                for old in existing["properties"]["subnets"]:
                    if old["name"].lower() not in seen:
                        users = self._subnet_users(old["id"])
                        if users:
                            raise ArmError(
                                400,
                                "InUseSubnetCannotBeDeleted",
                                f"Subnet {old['name']} is in use by {users[0]} and cannot be deleted. In order to "
                                "delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                            )
            vnet = {
                "id": vid,
                "name": name,
                "type": "Microsoft.Network/virtualNetworks",
                "location": location,
                "etag": f'W/"{uuid.uuid4()}"',
                "properties": {
                    "provisioningState": state,
                    "resourceGuid": existing["properties"]["resourceGuid"] if existing else str(uuid.uuid4()),
                    "addressSpace": {"addressPrefixes": [str(s) for s in space]},
                    "subnets": new_subnets,
                    "virtualNetworkPeerings": [],
                    "enableDdosProtection": bool(props.get("enableDdosProtection", False)),
                },
            }
            if body.get("tags") is not None:
                vnet["tags"] = body["tags"]
            self._vnets[key] = vnet
            op = self._new_op(
                "Microsoft.Network",
                "update" if existing else "create",
                vid,
                self.network_seconds,
                self._finish_network(key, None),
            )
            return (200 if existing else 201), self._lro_headers(op, ctx.params.get("api-version")), copy.deepcopy(vnet)

    def _vnet_delete(self, ctx: _Ctx) -> _Result:
        with self._lock:
            key = _key(self._vnet_id(ctx.g))
            vnet = self._vnets.get(key)
            if vnet is None:
                return 204, {}, None
            for s in vnet["properties"]["subnets"]:
                users = self._subnet_users(s["id"])
                if users:
                    raise ArmError(
                        400,
                        "InUseSubnetCannotBeDeleted",
                        f"Subnet {s['name']} is in use by {users[0]} and cannot be deleted. In order to delete the "
                        "subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                    )
            vnet["properties"]["provisioningState"] = "Deleting"

            def complete() -> tuple[None, list[Callable[[], None]]]:
                self._vnets.pop(key, None)
                return None, []

            op = self._new_op("Microsoft.Network", "delete", vnet["id"], self.network_seconds, complete)
            return 202, self._lro_headers(op, ctx.params.get("api-version")), None

    def _subnet_list(self, ctx: _Ctx) -> _Result:
        with self._lock:
            return 200, {}, {"value": copy.deepcopy(self._vnet(ctx.g)["properties"]["subnets"])}

    def _subnet_get(self, ctx: _Ctx) -> _Result:
        with self._lock:
            vnet = self._vnet(ctx.g)
            s = self._subnet_in(vnet, ctx.g["subnet"])
            if s is None:
                raise ArmError(404, "NotFound", f"Resource {vnet['id']}/subnets/{ctx.g['subnet']} not found.")
            return 200, {}, copy.deepcopy(s)

    def _subnet_put(self, ctx: _Ctx) -> _Result:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        with self._lock:
            vnet = self._vnet(ctx.g)
            old = self._subnet_in(vnet, ctx.g["subnet"])
            raw = dict(body)
            raw["name"] = old["name"] if old else ctx.g["subnet"]
            subnet, net = self._build_subnet(vnet["id"], raw, old, "Updating", ctx.params.get("api-version"))
            space = [ipaddress.ip_network(p) for p in vnet["properties"]["addressSpace"]["addressPrefixes"]]
            others = [
                (s["name"], ipaddress.ip_network(s["properties"]["addressPrefix"]))
                for s in vnet["properties"]["subnets"]
                if s["name"].lower() != subnet["name"].lower()
            ]
            self._check_subnet_layout(vnet["name"], space, [*others, (subnet["name"], net)])
            subs = vnet["properties"]["subnets"]
            if old is not None:
                subs[subs.index(old)] = subnet
            else:
                subs.append(subnet)
            op = self._new_op(
                "Microsoft.Network",
                "update" if old else "create",
                subnet["id"],
                self.network_seconds,
                self._finish_network(_key(vnet["id"]), subnet["name"]),
            )
            return (200 if old else 201), self._lro_headers(op, ctx.params.get("api-version")), copy.deepcopy(subnet)

    def _subnet_delete(self, ctx: _Ctx) -> _Result:
        with self._lock:
            vnet = self._vnet(ctx.g)
            s = self._subnet_in(vnet, ctx.g["subnet"])
            if s is None:
                return 204, {}, None
            users = self._subnet_users(s["id"])
            if users:
                raise ArmError(
                    400,
                    "InUseSubnetCannotBeDeleted",
                    f"Subnet {s['name']} is in use by {users[0]} and cannot be deleted. In order to delete the "
                    "subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                )
            vnet["properties"]["subnets"].remove(s)
            op = self._new_op("Microsoft.Network", "delete", s["id"], self.network_seconds, lambda: (None, []))
            return 202, self._lro_headers(op, ctx.params.get("api-version")), None
