"""Steps 3 and 5: the AKS cluster (Azure CNI, Entra ID + Azure RBAC, managed identity) and the virtual-node add-on. Pure."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from shared.base.conventions import ARM_TAGS
from shared.cluster.network import MAX_PODS_PER_NODE, NetworkPlan
from shared.cluster.plan.steps import (
    ADDON,
    ADDON_SUBNET_KEY,
    IN_PROGRESS_STATES,
    SYSTEM_POOL,
    Decision,
    Do,
    Step,
    Targets,
    same_id,
)
from shared.config.settings import Settings


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
    if changes and state.lower() in IN_PROGRESS_STATES:
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
