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

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.cluster import roles
from shared.config.settings import Settings

ACI_PROVIDER = "Microsoft.ContainerInstance"
ACI_DELEGATION = "Microsoft.ContainerInstance/containerGroups"
ADDON = "aciConnectorLinux"
ADDON_SUBNET_KEY = "SubnetName"
SYSTEM_POOL = "system"

ROLE_NAMESPACE = uuid.UUID("6b0f2c8e-44e4-5d8e-9a43-6f6e6f64652d")
IN_PROGRESS_STATES = frozenset({"creating", "updating", "upgrading", "scaling", "starting", "stopping", "deleting"})
ROLE_NAMES = {
    roles.NETWORK_CONTRIBUTOR: "Network Contributor",
    roles.AKS_RBAC_WRITER: "Azure Kubernetes Service RBAC Writer",
    roles.AKS_CONTRIBUTOR: "Azure Kubernetes Service Contributor Role",
    roles.RBAC_ADMINISTRATOR: "Role Based Access Control Administrator",
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
    BOOTSTRAP_RIGHTS = "bootstrap-rights"


class Do(enum.StrEnum):
    """What a step needs now."""

    NOTHING = "ok"  # exists as desired
    REGISTER = "register"  # POST .../register (asynchronous on ARM's side)
    CREATE = "create"  # PUT/POST of a new resource
    UPDATE = "update"  # PUT of the observed resource with changes
    START = "start"  # POST managedClusters/{name}/start of a stopped cluster (an LRO, not awaited)
    GIVE_UP = "give-up"  # DELETE the app's own bootstrap-only role assignments (body: their ids, in order)
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
        return self.do in (Do.REGISTER, Do.CREATE, Do.UPDATE, Do.START, Do.GIVE_UP)

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


# --- step 3: the cluster ------------------------------------------------------------------


# --- step 5: the virtual-node addon ---------------------------------------------------------


# --- steps 4, 6, 7: role assignments -----------------------------------------------------------


# --- step 8: the namespace, as an AKS managed namespace (ARM) ---------------------------------

"""What ``az aks namespace add`` sends when no ``--ingress-policy``/``--egress-policy`` is given
(azure-cli ``src/azure-cli/azure/cli/command_modules/acs/managednamespace.py``
setNetworkPolicyRule): the Jobs receive nothing from outside their namespace and reach
anything they need. Sent only to a cluster with a network policy engine (see below)."""


# --- step 9: the virtual node (Kubernetes) -----------------------------------------------------


# --- ARM errors → decisions ---------------------------------------------------------------
