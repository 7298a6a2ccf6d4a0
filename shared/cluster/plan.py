"""The bootstrap, as values: the desired state of each step and what to do given what exists. Pure.

The service (``shared.cluster.bootstrap``) reads ARM and Kubernetes, hands the observations
to the ``decide_*`` functions here and performs the one write they ask for. Keeping the
decisions pure means every branch — create, update, wait, blocked with a reason a person can
act on — is tested as a table, and the what-if (``python -m shared.cli plan``) is the same
code as the real thing with the writes left out.

Observations and bodies are ARM/Kubernetes REST JSON (camelCase, as on the wire): that is what
the stand-ins record, what ``az … --debug`` shows, and what the SDK's models hold inside.
"""

from __future__ import annotations

import base64
import binascii
import copy
import enum
import ipaddress
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from shared.base.conventions import ARM_TAGS, NAMESPACE_LABELS, VIRTUAL_NODE_NAME
from shared.base.errors import ArmFault
from shared.cluster import roles
from shared.cluster.network import MAX_PODS_PER_NODE, NetworkPlan
from shared.config.settings import Settings

ACI_PROVIDER = "Microsoft.ContainerInstance"
ACI_DELEGATION = "Microsoft.ContainerInstance/containerGroups"
ADDON = "aciConnectorLinux"
ADDON_SUBNET_KEY = "SubnetName"
SYSTEM_POOL = "system"

_ROLE_NAMESPACE = uuid.UUID("6b0f2c8e-44e4-5d8e-9a43-6f6e6f64652d")
_IN_PROGRESS_STATES = frozenset({"creating", "updating", "upgrading", "scaling", "starting", "stopping", "deleting"})
_ROLE_NAMES = {
    roles.NETWORK_CONTRIBUTOR: "Network Contributor",
    roles.AKS_RBAC_WRITER: "Azure Kubernetes Service RBAC Writer",
}


class Step(enum.StrEnum):
    """The bootstrap's steps, in the order they are evaluated."""

    PROVIDER = "provider"
    NETWORK = "network"
    CLUSTER = "cluster"
    CLUSTER_SUBNET_ROLE = "cluster-subnet-role"
    ADDON = "virtual-node-addon"
    VNODE_SUBNET_ROLE = "vnode-subnet-role"
    APP_ROLE = "app-namespace-role"
    NAMESPACE = "namespace"
    VIRTUAL_NODE = "virtual-node"


class Do(enum.StrEnum):
    """What a step needs now."""

    NOTHING = "ok"  # exists as desired
    REGISTER = "register"  # POST .../register (asynchronous on ARM's side)
    CREATE = "create"  # PUT/POST of a new resource
    UPDATE = "update"  # PUT of the observed resource with changes
    START = "start"  # POST managedClusters/{name}/start of a stopped cluster (an LRO, not awaited)
    WAIT = "wait"  # something is in progress (or throttled): observe again later
    BLOCKED = "blocked"  # waiting cannot help; a person must act (the reason says how)
    PENDING = "pending"  # (what-if only) depends on an earlier step that is not done


@dataclass(frozen=True)
class Decision:
    """One step's verdict. ``body`` is what to send for REGISTER/CREATE/UPDATE."""

    step: Step
    do: Do
    why: str
    resource: str = ""  # what the action applies to: "vnet", "subnet:<name>", an id, a name
    body: Mapping[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.do is Do.NOTHING

    @property
    def writes(self) -> bool:
        return self.do in (Do.REGISTER, Do.CREATE, Do.UPDATE, Do.START)

    @property
    def hopeless(self) -> bool:
        return self.do is Do.BLOCKED

    @property
    def reason(self) -> str:
        """``<step>: <why>`` — the text dispatch puts in deferrals and dead-letter events."""
        return f"{self.step}: {self.why}"


# --- where things are ---------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """ARM ids and scopes of everything the bootstrap touches, computed from the settings."""

    subscription_id: str
    resource_group: str
    cluster_name: str
    namespace: str
    app_principal_id: str
    vnet_name: str
    cluster_subnet_name: str
    vnode_subnet_name: str

    @property
    def resource_group_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    @property
    def vnet_id(self) -> str:
        return f"{self.resource_group_id}/providers/Microsoft.Network/virtualNetworks/{self.vnet_name}"

    @property
    def cluster_subnet_id(self) -> str:
        return f"{self.vnet_id}/subnets/{self.cluster_subnet_name}"

    @property
    def vnode_subnet_id(self) -> str:
        return f"{self.vnet_id}/subnets/{self.vnode_subnet_name}"

    @property
    def cluster_id(self) -> str:
        return f"{self.resource_group_id}/providers/Microsoft.ContainerService/managedClusters/{self.cluster_name}"

    @property
    def namespace_scope(self) -> str:
        """Azure RBAC for Kubernetes scopes a grant to one namespace this way (manage-azure-rbac docs).

        The managed-namespaces docs assign the same roles on the managed namespace's own id
        (:attr:`managed_namespace_id`) instead; both are documented. This scope is kept: it does
        not depend on the managed namespace existing, and role assignments made by earlier
        versions (named from this scope) stay the ones found.
        """
        return f"{self.cluster_id}/namespaces/{self.namespace}"

    @property
    def managed_namespace_id(self) -> str:
        """The AKS managed namespace (an ARM child resource of the cluster) the app runs its Jobs in."""
        return f"{self.cluster_id}/managedNamespaces/{self.namespace}"


def targets_for(settings: Settings) -> Targets:
    assert settings.subscription_id, "aks mode requires VNB_SUBSCRIPTION_ID (Settings checks it)"
    assert settings.resource_group, "aks mode requires VNB_RESOURCE_GROUP"
    assert settings.app_principal_id, "aks mode requires VNB_APP_PRINCIPAL_ID"
    return Targets(
        subscription_id=settings.subscription_id,
        resource_group=settings.resource_group,
        cluster_name=settings.cluster_name,
        namespace=settings.namespace,
        app_principal_id=settings.app_principal_id,
        vnet_name=settings.vnet_name,
        cluster_subnet_name=settings.cluster_subnet_name,
        vnode_subnet_name=settings.vnode_subnet_name,
    )


def same_id(a: str | None, b: str | None) -> bool:
    """ARM ids compare case-insensitively (AKS answers with ``resourcegroups`` in lower case)."""
    return bool(a) and bool(b) and str(a).strip("/").lower() == str(b).strip("/").lower()


# --- step 1: resource provider -----------------------------------------------------------


def decide_provider(state: str | None) -> Decision:
    """ACI must be registered before the addon is enabled (the addon creates container groups)."""
    s = (state or "NotRegistered").lower()
    if s == "registered":
        return Decision(Step.PROVIDER, Do.NOTHING, f"{ACI_PROVIDER} registered", ACI_PROVIDER)
    if s in ("registering", "unregistering"):
        return Decision(Step.PROVIDER, Do.WAIT, f"{ACI_PROVIDER} is {state}", ACI_PROVIDER)
    return Decision(
        Step.PROVIDER,
        Do.REGISTER,
        f"{ACI_PROVIDER} is {state or 'NotRegistered'}: register it for the subscription",
        ACI_PROVIDER,
    )


# --- step 2: vnet and subnets -------------------------------------------------------------


VNODE_SUBNET_EGRESS: dict[str, Any] = {"defaultOutboundAccess": True}
"""Outbound access of the virtual-node subnet, stated explicitly (docs/bootstrap.md, "Egress").

From network api-version 2025-07-01 a subnet created without ``defaultOutboundAccess`` is
private (``false``): no implicit outbound IP ("Private subnets by default in Azure virtual
networks", Azure Networking Blog, techcommunity.microsoft.com, 2026; learn.microsoft.com
virtual-network/ip-services/default-outbound-access). The pinned azure-mgmt-network 33.1.0
sends api-version 2026-03-01 (``operations/_operations.py`` build_subnets_create_or_update_request),
so without this the ACI container groups of the virtual node would have no internet egress:
no image pulls from public registries, no calls to public endpoints. The cluster subnet needs
nothing: its nodes leave through the AKS standard load balancer (outboundType loadBalancer,
the default), an explicit outbound method."""


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
    if state.lower() in _IN_PROGRESS_STATES:
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
        if sub_state.lower() in _IN_PROGRESS_STATES:
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


# --- step 3: the cluster ------------------------------------------------------------------


def dns_prefix(cluster_name: str) -> str:
    """AKS dnsPrefix: 1-54 letters, digits and hyphens, starting and ending alphanumeric."""
    text = re.sub(r"[^A-Za-z0-9-]", "-", cluster_name).strip("-")[:54].strip("-")
    return text or "vnode-batch"


def cluster_body(settings: Settings, plan: NetworkPlan, targets: Targets, location: str) -> dict[str, Any]:
    """The managed cluster the virtual node needs (azure-brief.md §1), as the PUT body.

    Flat Azure CNI (no overlay: virtual nodes need pods on vnet addresses), a system-assigned
    identity (no secret anywhere), Entra ID with Azure RBAC and no local accounts (the app
    reaches the API with its own Entra token, scoped to its namespace). ``maxPods`` is pinned
    to the value the network plan sized the cluster subnet for. The addon comes later, in its
    own step, once the cluster identity can be granted rights on the cluster subnet.
    """
    props: dict[str, Any] = {
        "dnsPrefix": dns_prefix(targets.cluster_name),
        "enableRBAC": True,
        "agentPoolProfiles": [
            {
                "name": SYSTEM_POOL,
                "mode": "System",
                "count": settings.node_count,
                "vmSize": settings.node_vm_size,
                "osType": "Linux",
                "type": "VirtualMachineScaleSets",
                "maxPods": MAX_PODS_PER_NODE,
                "vnetSubnetID": targets.cluster_subnet_id,
            }
        ],
        "networkProfile": {
            "networkPlugin": "azure",
            "serviceCidr": str(plan.service_cidr),
            "dnsServiceIP": str(plan.dns_service_ip),
        },
        "aadProfile": {"managed": True, "enableAzureRBAC": True},
        "disableLocalAccounts": True,
    }
    if settings.kubernetes_version:
        props["kubernetesVersion"] = settings.kubernetes_version
    return {
        "location": location,
        "tags": dict(ARM_TAGS),
        "identity": {"type": "SystemAssigned"},
        "properties": props,
    }


def cluster_state(cluster: Mapping[str, Any]) -> str:
    return str((cluster.get("properties") or {}).get("provisioningState") or "Unknown")


def cluster_power(cluster: Mapping[str, Any]) -> str:
    """``properties.powerState.code``: Running or Stopped (Running when absent, as before stop/start existed)."""
    return str(((cluster.get("properties") or {}).get("powerState") or {}).get("code") or "Running")


def cluster_principal(cluster: Mapping[str, Any] | None) -> str | None:
    """Object id of the cluster's control-plane identity (system- or first user-assigned)."""
    identity = (cluster or {}).get("identity") or {}
    if identity.get("principalId"):
        return str(identity["principalId"])
    for value in (identity.get("userAssignedIdentities") or {}).values():
        if isinstance(value, Mapping) and value.get("principalId"):
            return str(value["principalId"])
    return None


def _provisioning_error(cluster: Mapping[str, Any]) -> str:
    err = ((cluster.get("properties") or {}).get("status") or {}).get("provisioningError") or {}
    if err:
        return f" ({err.get('code')}: {err.get('message')})"
    return ""


def decide_cluster(
    cluster: Mapping[str, Any] | None, plan: NetworkPlan, targets: Targets, desired: Mapping[str, Any] | None
) -> Decision:
    """Create the cluster if absent; refuse one whose immutable network settings differ."""
    step = Step.CLUSTER
    name = targets.cluster_name
    if cluster is None:
        return Decision(
            step,
            Do.CREATE,
            f"managed cluster {name} does not exist: create it (Azure CNI on {plan.cluster_subnet_name}, system-assigned "
            "identity, Entra ID + Azure RBAC, local accounts disabled)",
            targets.cluster_id,
            desired,
        )
    state = cluster_state(cluster)
    props = cluster.get("properties") or {}
    # Only a cluster being created (or deleted) is not there yet. Updating/Upgrading/Scaling
    # clusters serve their API: the later steps go on, and those that must PUT the cluster
    # (the addon) wait for it to settle themselves.
    if state.lower() in ("creating", "deleting"):
        return Decision(step, Do.WAIT, f"managed cluster {name} is {state}", targets.cluster_id)
    if state.lower() in ("failed", "canceled"):
        return Decision(
            step,
            Do.BLOCKED,
            f"managed cluster {name} is in provisioningState {state}{_provisioning_error(cluster)}: see the activity "
            f"log of resource group {targets.resource_group}; fix the cause, then `az aks update -g "
            f"{targets.resource_group} -n {name}` re-applies it (or delete it and let the bootstrap recreate it)",
            targets.cluster_id,
        )
    # Stop/start (idle stop, `cli cluster stop`, `az aks stop`): while AKS stops or starts a
    # cluster its provisioningState is Stopping/Starting and its API is gone; once stopped,
    # powerState.code is "Stopped" (azure-rest-api-specs containerservice ManagedClusters_Stop,
    # ManagedClusters_Start; learn.microsoft.com/azure/aks/start-stop-cluster). A request that
    # finds it stopped starts it: the POST is the whole action, the start is observed later.
    power = cluster_power(cluster)
    if state.lower() in ("stopping", "starting"):
        return Decision(step, Do.WAIT, f"managed cluster {name} is {state} (power state {power})", targets.cluster_id)
    if power.lower() == "stopped":
        return Decision(
            step,
            Do.START,
            f"managed cluster {name} is stopped: start it (POST managedClusters/{name}/start)",
            targets.cluster_id,
        )
    net = props.get("networkProfile") or {}
    plugin, mode = net.get("networkPlugin"), net.get("networkPluginMode")
    if plugin != "azure" or (mode and str(mode).lower() == "overlay"):
        shown = f"{plugin}" + (f" ({mode})" if mode else "")
        return Decision(
            step,
            Do.BLOCKED,
            f"managed cluster {name} exists with network plugin {shown}; the virtual node needs flat Azure CNI (azure, "
            "no overlay), which cannot be changed on an existing cluster: set VNB_CLUSTER_NAME to a new name or delete "
            "the cluster",
            targets.cluster_id,
        )
    for setting, key, value in (
        ("VNB_SERVICE_CIDR", "serviceCidr", str(plan.service_cidr)),
        ("VNB_DNS_SERVICE_IP", "dnsServiceIP", str(plan.dns_service_ip)),
    ):
        if net.get(key) and net.get(key) != value:
            return Decision(
                step,
                Do.BLOCKED,
                f"managed cluster {name} exists with {key} {net.get(key)} but {setting} says {value}; it cannot change "
                f"on an existing cluster: set {setting}={net.get(key)}",
                targets.cluster_id,
            )
    pools = props.get("agentPoolProfiles") or []
    if not any(same_id(p.get("vnetSubnetID"), targets.cluster_subnet_id) for p in pools):
        return Decision(
            step,
            Do.BLOCKED,
            f"managed cluster {name} has no node pool on subnet {plan.cluster_subnet_name} of vnet {plan.vnet_name}; "
            "the virtual-node subnet must be in the nodes' vnet: point VNB_VNET_NAME/VNB_CLUSTER_SUBNET_NAME at the "
            "cluster's subnet or use another VNB_CLUSTER_NAME",
            targets.cluster_id,
        )
    aad = props.get("aadProfile") or {}
    changes = []
    if not (aad.get("managed") and aad.get("enableAzureRBAC")):
        changes.append("enable Entra ID with Azure RBAC")
    if not props.get("disableLocalAccounts"):
        changes.append("disable local accounts")
    if changes and state.lower() in _IN_PROGRESS_STATES:
        return Decision(
            step, Do.WAIT, f"managed cluster {name} is {state}; then: " + " and ".join(changes), targets.cluster_id
        )
    if changes:
        body = copy.deepcopy(dict(cluster))
        bprops = body.setdefault("properties", {})
        bprops["aadProfile"] = {**(bprops.get("aadProfile") or {}), "managed": True, "enableAzureRBAC": True}
        bprops["disableLocalAccounts"] = True
        return Decision(
            step,
            Do.UPDATE,
            f"managed cluster {name} exists; the app reaches it with an Entra token and Azure RBAC: "
            + " and ".join(changes),
            targets.cluster_id,
            body,
        )
    return Decision(step, Do.NOTHING, f"managed cluster {name} {state}", targets.cluster_id)


# --- step 5: the virtual-node addon ---------------------------------------------------------


def addon_profile(cluster: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    for key, value in (((cluster or {}).get("properties") or {}).get("addonProfiles") or {}).items():
        if str(key).lower() == ADDON.lower() and isinstance(value, Mapping):
            return value
    return None


def addon_principal(cluster: Mapping[str, Any] | None) -> str | None:
    """Object id of the addon's identity (``aciconnectorlinux-<cluster>``), once AKS made it."""
    profile = addon_profile(cluster) or {}
    object_id = (profile.get("identity") or {}).get("objectId")
    return str(object_id) if object_id else None


def _addon_subnet(profile: Mapping[str, Any]) -> str | None:
    for key, value in (profile.get("config") or {}).items():
        if str(key).lower() == ADDON_SUBNET_KEY.lower():
            return str(value)
    return None


def with_addon(cluster: Mapping[str, Any], subnet_name: str) -> dict[str, Any]:
    """The observed cluster with the virtual-node addon enabled (GET, set addonProfiles, PUT)."""
    body = copy.deepcopy(dict(cluster))
    props = body.setdefault("properties", {})
    addons = {k: v for k, v in (props.get("addonProfiles") or {}).items() if str(k).lower() != ADDON.lower()}
    addons[ADDON] = {"enabled": True, "config": {ADDON_SUBNET_KEY: subnet_name}}
    props["addonProfiles"] = addons
    return body


def decide_addon(cluster: Mapping[str, Any], plan: NetworkPlan, targets: Targets) -> Decision:
    step = Step.ADDON
    state = cluster_state(cluster)
    profile = addon_profile(cluster)
    if profile is not None and profile.get("enabled"):
        subnet = _addon_subnet(profile)
        if (subnet or "").lower() != plan.vnode_subnet_name.lower():
            return Decision(
                step,
                Do.BLOCKED,
                f"the virtual-node addon of {targets.cluster_name} uses subnet {subnet}, but VNB_VNODE_SUBNET_NAME says "
                f"{plan.vnode_subnet_name}: set VNB_VNODE_SUBNET_NAME={subnet} (and its CIDR), or disable the addon",
                targets.cluster_id,
            )
        if addon_principal(cluster):
            return Decision(step, Do.NOTHING, f"{ADDON} enabled on subnet {subnet}", targets.cluster_id)
        if state.lower() in ("failed", "canceled"):
            return Decision(
                step,
                Do.BLOCKED,
                f"enabling {ADDON} left cluster {targets.cluster_name} {state}{_provisioning_error(cluster)}: check "
                f"subnet {plan.vnode_subnet_name} (not delegated to another service, no route table) and the activity "
                "log; then `az aks update` re-applies the cluster",
                targets.cluster_id,
            )
        return Decision(step, Do.WAIT, f"{ADDON} is being enabled (cluster {state})", targets.cluster_id)
    if state.lower() != "succeeded":
        return Decision(step, Do.WAIT, f"cluster {state}: the addon is enabled once it settles", targets.cluster_id)
    return Decision(
        step,
        Do.UPDATE,
        f"{ADDON} is not enabled: enable it on subnet {plan.vnode_subnet_name}",
        targets.cluster_id,
        with_addon(cluster, plan.vnode_subnet_name),
    )


# --- steps 4, 6, 7: role assignments -----------------------------------------------------------


_WHO = {
    Step.CLUSTER_SUBNET_ROLE: "the cluster identity",
    Step.VNODE_SUBNET_ROLE: "the virtual-node addon identity",
    Step.APP_ROLE: "the app identity",
}


@dataclass(frozen=True)
class RoleGrant:
    """A role assignment the bootstrap makes. The name is a function of (scope, principal, role),
    so every instance computes the same one and concurrent creates meet on a single resource."""

    step: Step
    scope: str
    principal_id: str
    role: str  # role definition GUID
    subscription_id: str

    @property
    def name(self) -> str:
        key = f"{self.scope.strip('/').lower()}|{self.principal_id.lower()}|{self.role.lower()}"
        return str(uuid.uuid5(_ROLE_NAMESPACE, key))

    @property
    def role_definition_id(self) -> str:
        return roles.role_definition_id(self.subscription_id, self.role)

    @property
    def role_name(self) -> str:
        return _ROLE_NAMES.get(self.role, self.role)

    @property
    def body(self) -> dict[str, Any]:
        return {
            "properties": {
                "roleDefinitionId": self.role_definition_id,
                "principalId": self.principal_id,
                # The SDK's default ('User') fails for a managed identity created seconds ago.
                "principalType": "ServicePrincipal",
            }
        }

    def describe(self) -> str:
        who = _WHO.get(self.step, "principal")
        return f"{self.role_name} for {who} {self.principal_id} on {self.scope}"


def cluster_subnet_grant(targets: Targets, principal: str) -> RoleGrant:
    """The cluster identity manages the node NICs and load balancer in the cluster subnet."""
    return RoleGrant(
        Step.CLUSTER_SUBNET_ROLE,
        targets.cluster_subnet_id,
        principal,
        roles.NETWORK_CONTRIBUTOR,
        targets.subscription_id,
    )


def vnode_subnet_grant(targets: Targets, principal: str) -> RoleGrant:
    """The addon identity joins container groups to the virtual-node subnet (least privilege: the
    subnet, not the vnet that az CLI grants)."""
    return RoleGrant(
        Step.VNODE_SUBNET_ROLE, targets.vnode_subnet_id, principal, roles.NETWORK_CONTRIBUTOR, targets.subscription_id
    )


def app_namespace_grant(targets: Targets) -> RoleGrant:
    """The app's own identity may create Jobs and read pods and logs in its namespace, nowhere else."""
    return RoleGrant(
        Step.APP_ROLE, targets.namespace_scope, targets.app_principal_id, roles.AKS_RBAC_WRITER, targets.subscription_id
    )


def decide_role(grant: RoleGrant, observed: Mapping[str, Any] | None) -> Decision:
    if observed is None:
        return Decision(grant.step, Do.CREATE, f"grant {grant.describe()}", grant.name, grant.body)
    props = observed.get("properties") or {}
    if str(props.get("principalId", "")).lower() != grant.principal_id.lower() or not str(
        props.get("roleDefinitionId", "")
    ).lower().endswith(grant.role.lower()):
        return Decision(
            grant.step,
            Do.BLOCKED,
            f"role assignment {grant.name} on {grant.scope} exists for another principal or role "
            f"({props.get('principalId')}, {props.get('roleDefinitionId')}): delete it so the bootstrap can recreate it",
            grant.name,
        )
    return Decision(grant.step, Do.NOTHING, f"{grant.describe()} granted", grant.name)


# --- step 8: the namespace, as an AKS managed namespace (ARM) ---------------------------------

NAMESPACE_NETWORK_POLICY = {"ingress": "AllowSameNamespace", "egress": "AllowAll"}
"""What ``az aks namespace add`` sends when no ``--ingress-policy``/``--egress-policy`` is given
(azure-cli ``src/azure-cli/azure/cli/command_modules/acs/managednamespace.py``
setNetworkPolicyRule): the Jobs receive nothing from outside their namespace and reach
anything they need. Sent only to a cluster with a network policy engine (see below)."""


def network_policy_engine(cluster: Mapping[str, Any] | None) -> str | None:
    """The cluster's network policy engine (``networkProfile.networkPolicy``: azure, calico,
    cilium), or None when it has none (absent or ``none``)."""
    net = ((cluster or {}).get("properties") or {}).get("networkProfile") or {}
    engine = net.get("networkPolicy")
    return str(engine) if engine and str(engine).lower() != "none" else None


def managed_namespace_body(targets: Targets, location: str, *, network_policy: str | None = None) -> dict[str, Any]:
    """The PUT body of ``managedClusters/{c}/managedNamespaces/{ns}``: what ``az aks namespace
    add`` sends (azure-cli ``acs/managednamespace.py`` aks_managed_namespace_add /
    constructNamespace: the cluster's location, tags, labels, default network policy, adoption
    and delete policies), less what does not apply here.

    Created through ARM because the app's Kubernetes rights stop at its namespace (AKS RBAC
    Writer on ``{clusterId}/namespaces/{ns}``): creating a Namespace object is cluster-scoped,
    while ``managedClusters/managedNamespaces/write`` is an ARM action that AKS Contributor
    (``managedClusters/*``), already held on the resource group, covers.

    - ``adoptionPolicy: Always`` (the CLI defaults to ``Never``): a namespace made before (by
      an earlier version of the app through the Kubernetes API, or by hand with ``kubectl
      create namespace``) is taken over, not refused (``Never``) or refused on the first
      differing label (``IfIdentical``).
    - ``deletePolicy: Keep`` (the CLI's default): deleting the ARM resource leaves the namespace
      and its Jobs.
    - no ``defaultResourceQuota``: the REST schema does not require it (azure-rest-api-specs
      ``specification/containerservice/resource-manager/Microsoft.ContainerService/aks/stable/
      2025-10-01/managedClusters.json`` NamespaceProperties has no ``required`` list); only the
      CLI insists on all four values, client-side (setResourceQuota raises
      RequiredArgumentMissingError). Concurrency is bounded by VNB_MAX_PARALLELISM and ACI's
      quotas; a namespace quota would make every pod declare requests and cap parallelism a
      second time, with rejected pods instead of deferred requests.
    - ``defaultNetworkPolicy`` only when ``network_policy`` names the cluster's engine
      (:func:`network_policy_engine`): "To use the network policy feature, the AKS cluster
      needs to be configured with a network policy engine" (learn.microsoft.com
      azure/aks/managed-namespaces, Prerequisites). The bootstrap's own cluster sets none, so
      its body has no policy; a cluster brought with an engine gets the CLI's defaults.
    """
    props: dict[str, Any] = {"labels": dict(NAMESPACE_LABELS)}
    if network_policy:
        props["defaultNetworkPolicy"] = dict(NAMESPACE_NETWORK_POLICY)
    props.update({"adoptionPolicy": "Always", "deletePolicy": "Keep"})
    return {"location": location, "tags": dict(ARM_TAGS), "properties": props}


def _ns_error(observed: Mapping[str, Any]) -> str:
    props = observed.get("properties") or {}
    err = (props.get("status") or {}).get("provisioningError") or props.get("error") or {}
    return f" ({err.get('code')}: {err.get('message')})" if err else ""


def decide_namespace(
    observed: Mapping[str, Any] | None,
    targets: Targets,
    desired: Mapping[str, Any] | None,
    cluster_state: str = "Succeeded",
) -> Decision:
    """Create the managed namespace if absent; wait while ARM works on it; done once Succeeded.

    An existing Succeeded managed namespace is left as it is: quota, policies or labels an
    operator set afterwards are theirs (a PUT would replace them), and the app needs only the
    namespace to exist.
    """
    step = Step.NAMESPACE
    ns, rid = targets.namespace, targets.managed_namespace_id
    if observed is None:
        if cluster_state.lower() != "succeeded":
            return Decision(
                step, Do.WAIT, f"cluster {cluster_state}: managed namespace {ns} is created once it settles", rid
            )
        return Decision(
            step,
            Do.CREATE,
            f"managed namespace {ns} does not exist: create it through ARM (the app has no cluster-scope Kubernetes "
            "rights to create a Namespace)",
            rid,
            desired,
        )
    state = str((observed.get("properties") or {}).get("provisioningState") or "Succeeded")
    if state.lower() in _IN_PROGRESS_STATES:
        return Decision(step, Do.WAIT, f"managed namespace {ns} is {state}", rid)
    if state.lower() in ("failed", "canceled"):
        return Decision(
            step,
            Do.BLOCKED,
            f"managed namespace {ns} is in provisioningState {state}{_ns_error(observed)}: see the activity log of "
            f"resource group {targets.resource_group}; then `az aks namespace delete -g {targets.resource_group} "
            f"--cluster-name {targets.cluster_name} -n {ns}` and the bootstrap creates it again (system namespaces such "
            "as kube-system cannot be managed: choose another VNB_NAMESPACE)",
            rid,
        )
    return Decision(step, Do.NOTHING, f"managed namespace {ns} {state}", rid)


# --- step 9: the virtual node (Kubernetes) -----------------------------------------------------


def node_ready(node: Mapping[str, Any] | None) -> bool:
    for c in ((node or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def decide_virtual_node(node: Mapping[str, Any] | None) -> Decision:
    if node is None:
        return Decision(
            Step.VIRTUAL_NODE,
            Do.WAIT,
            f"node {VIRTUAL_NODE_NAME} is not registered yet (the addon's connector pod starts it)",
            VIRTUAL_NODE_NAME,
        )
    if not node_ready(node):
        return Decision(Step.VIRTUAL_NODE, Do.WAIT, f"node {VIRTUAL_NODE_NAME} is not Ready", VIRTUAL_NODE_NAME)
    return Decision(Step.VIRTUAL_NODE, Do.NOTHING, f"node {VIRTUAL_NODE_NAME} Ready", VIRTUAL_NODE_NAME)


@dataclass(frozen=True)
class KubeEndpoint:
    server: str
    ca_pem: bytes


def kube_endpoint(kubeconfig: bytes) -> KubeEndpoint:
    """Server URL and CA from the cluster USER kubeconfig.

    Only ``clusters[0].cluster`` is read: the user entry of an Entra ID cluster is a kubelogin
    exec plugin, which a Functions worker neither has nor should run; the app brings its own
    token instead. (The SDK already base64-decodes ``kubeconfigs[0].value``; an encoded value
    is accepted too.)
    """
    text = kubeconfig
    parsed = _yaml_mapping(text)
    if parsed is None:
        try:
            parsed = _yaml_mapping(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            parsed = None
    if parsed is None:
        raise ValueError("the cluster user credential is not a kubeconfig (no clusters[0].cluster)")
    clusters = parsed.get("clusters") or []
    cluster = (clusters[0] or {}).get("cluster") if clusters else None
    if not isinstance(cluster, Mapping) or not cluster.get("server"):
        raise ValueError("the cluster user kubeconfig has no clusters[0].cluster.server")
    ca_data = cluster.get("certificate-authority-data")
    if not ca_data:
        raise ValueError("the cluster user kubeconfig has no certificate-authority-data")
    return KubeEndpoint(server=str(cluster["server"]), ca_pem=base64.b64decode(str(ca_data)))


def _yaml_mapping(data: bytes) -> dict[str, Any] | None:
    try:
        value = yaml.safe_load(data)
    except yaml.YAMLError:
        return None
    return value if isinstance(value, dict) and "clusters" in value else None


# --- ARM errors → decisions ---------------------------------------------------------------


_ACTION = re.compile(r"perform action(?:\(s\))? '([^']+)' (?:over|on the linked) scope(?:\(s\))? '([^']+)'")
_OBJECT_ID = re.compile(r"object id '([0-9A-Fa-f-]{36})'")
_ROLE_FOR_ACTION: tuple[tuple[str, str], ...] = (
    (
        "microsoft.authorization/roleassignments/",
        "Role Based Access Control Administrator (with the condition of infra/app/cluster-rbac.bicep: Network "
        "Contributor and AKS RBAC Writer only)",
    ),
    ("microsoft.network/", "Network Contributor"),
    (
        "microsoft.containerservice/managedclusters/managednamespaces/",
        "Azure Kubernetes Service Contributor Role (or, for namespaces only, Azure Kubernetes Service Namespace "
        "Contributor)",
    ),
    (
        "microsoft.containerservice/managedclusters/listclusterusercredential",
        "Azure Kubernetes Service Cluster User Role",
    ),
    ("microsoft.containerservice/", "Azure Kubernetes Service Contributor Role"),
    ("microsoft.resources/", "Reader (any role that reads the resource group)"),
)


def classify(step: Step, fault: ArmFault, targets: Targets) -> Decision:
    """What an ARM failure means for the bootstrap: wait (in progress, throttled, ARM trouble)
    or blocked (a permission, a quota, a bad setting), with a reason a person can act on."""
    code = fault.code or ""
    lowered = f"{code} {fault.message}".lower()
    status = fault.status
    if status == 429:
        after = f", retry after {fault.retry_after:g} s" if fault.retry_after else ""
        return Decision(step, Do.WAIT, f"ARM is throttling the app ({code or 429}{after})")
    if status == 409 and ("in progress" in lowered or "anotheroperationinprogress" in lowered):
        return Decision(step, Do.WAIT, f"another operation is in progress ({code}): {fault.message[:200]}")
    if status == 403 or code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
        return Decision(step, Do.BLOCKED, _permission_reason(fault, targets))
    if code in ("ResourceGroupNotFound", "SubscriptionNotFound"):
        return Decision(
            step,
            Do.BLOCKED,
            f"{code}: {fault.message[:200]} — the cluster's resource group is created by infra/ (`azd up`); create it "
            "or correct VNB_SUBSCRIPTION_ID / VNB_RESOURCE_GROUP",
        )
    if code == "PrincipalNotFound":
        return Decision(
            step,
            Do.WAIT,
            f"Entra ID does not know the identity yet ({fault.message[:160]}): new managed identities take a while to "
            "replicate",
        )
    if code == "MissingSubscriptionRegistration" or "not registered to use namespace" in lowered:
        return Decision(
            step,
            Do.WAIT,
            f"a resource provider is not registered for the subscription ({fault.message[:200]}): if it does not "
            "register by itself, run `az provider register --namespace <namespace>` once",
        )
    if "quota" in lowered:
        return Decision(
            step,
            Do.BLOCKED,
            f"a quota is exhausted ({code}: {fault.message[:300]}): request more quota for the region, or lower "
            "VNB_NODE_COUNT / pick another VNB_NODE_VM_SIZE or VNB_LOCATION",
        )
    if code in ("SubnetIsDelegated", "SubnetDelegationConflict", "InUseSubnetCannotBeUpdated", "SubnetNotFound"):
        return Decision(
            step,
            Do.BLOCKED,
            f"{code}: {fault.message[:300]} — fix the subnet or choose another (VNB_CLUSTER_SUBNET_NAME, "
            "VNB_VNODE_SUBNET_NAME and their CIDRs)",
        )
    if code in ("CredentialUnavailable",):
        return Decision(
            step,
            Do.BLOCKED,
            f"no Azure credential: {fault.message[:300]} — in Azure give the Function App a managed identity (and set "
            "AZURE_CLIENT_ID for a user-assigned one); locally, `az login`",
        )
    if status is None or status >= 500 or status in (408, 401):
        return Decision(step, Do.WAIT, f"ARM call failed ({status or 'no answer'} {code}): {fault.message[:200]}")
    return Decision(
        step,
        Do.BLOCKED,
        f"ARM refused the request ({status} {code}): {fault.message[:300]} — check the VNB_ settings of this step",
    )


def _permission_reason(fault: ArmFault, targets: Targets) -> str:
    match = _ACTION.search(fault.message)
    action, scope = (match.group(1), match.group(2)) if match else ("(unknown)", targets.resource_group_id)
    object_id = _OBJECT_ID.search(fault.message)
    principal = object_id.group(1) if object_id else targets.app_principal_id
    low = action.lower()
    if low.endswith("/register/action"):
        namespace = action.split("/", 1)[0]
        return (
            f"the app identity {principal} may not register resource provider {namespace} (it has no subscription-"
            f"scope rights, by design): run `az provider register --namespace {namespace}` once, or grant it "
            f"'{action}' on /subscriptions/{targets.subscription_id}: the failed action was {action} over {scope}"
        )
    role = next((r for prefix, r in _ROLE_FOR_ACTION if low.startswith(prefix)), "a role that allows it")
    grant_scope = targets.resource_group_id if same_prefix(scope, targets.resource_group_id) else scope
    return f"grant {role} on {grant_scope} to the app identity {principal}: the failed action was {action} over {scope}"


def same_prefix(scope: str, prefix: str) -> bool:
    s, p = scope.strip("/").lower(), prefix.strip("/").lower()
    return s == p or s.startswith(p + "/")
