"""Settings of the cluster: how it is reached (aks or kubeconfig), the namespace, and what
bootstrap builds in aks mode (network, node pool, permissions)."""

from __future__ import annotations

import ipaddress
import re
from typing import Final, Literal

from pydantic import field_validator

from shared.config.fields import SettingsGroup, setting

SYSTEM_NAMESPACES: Final = frozenset(
    {
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "gatekeeper-system",  # Azure Policy add-on
        "calico-system",  # Calico network policy
        "tigera-operator",
        "tigera-system",
        "aks-command",  # az aks command invoke
        "app-routing-system",  # application routing add-on
        "aks-istio-system",  # Istio service mesh add-on
        "azure-arc",
        "flux-system",  # GitOps extension
        "dapr-system",
        "keda",
    }
)
"""Namespaces of Kubernetes itself, AKS and its add-ons: never the app's (it adopts its namespace
through an AKS managed namespace, ``adoptionPolicy: Always``, and writes Jobs there)."""
SYSTEM_NAMESPACE_PREFIXES: Final = ("kube-", "aks-", "openshift-")

DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MIN_JOB_NAME = 14
"""The shortest Job name the app makes: ``vnb-`` + a 10-character hash of the key (shared.job.render)."""


class ClusterSettings(SettingsGroup):
    """Cluster access and bootstrap."""

    cluster_mode: Literal["aks", "kubeconfig"] = setting(
        "VNB_CLUSTER_MODE",
        "aks",
        "`aks`: the app finds or bootstraps the AKS cluster through ARM with its managed "
        "identity. `kubeconfig`: bring your own cluster, reached with `VNB_KUBECONFIG`; ARM is never called.",
    )
    kubeconfig: str | None = setting("VNB_KUBECONFIG", None, "Path of the kubeconfig file (kubeconfig mode only).")
    kube_context: str | None = setting(
        "VNB_KUBE_CONTEXT", None, "Context to use from the kubeconfig (default: its current-context)."
    )
    namespace: str = setting(
        "VNB_NAMESPACE",
        "vnode-batch",
        "Namespace the Jobs are created in, the app's own: a namespace of Kubernetes, AKS or an add-on "
        "(`default`, `kube-*`, `aks-*`, `gatekeeper-system`, `calico-system`, `tigera-operator`, ...) is "
        "refused. On the virtual node every pod becomes the ACI container "
        "group `<namespace>-<pod name>` (≤ 63 characters, no `--`), so a long namespace leaves less "
        "room for Job names; startup fails if none is left for VNB_MAX_COMPLETIONS.",
    )
    kube_timeout_seconds: float = setting(
        "VNB_KUBE_TIMEOUT_SECONDS",
        10.0,
        "Timeout of one Kubernetes API call; a timeout is a transient failure (the message is retried).",
    )

    subscription_id: str | None = setting("VNB_SUBSCRIPTION_ID", None, "Subscription of the cluster (aks mode).")
    resource_group: str | None = setting(
        "VNB_RESOURCE_GROUP",
        None,
        "Resource group of the cluster, created by infra/; the app's identity has rights only there (aks mode).",
    )
    cluster_name: str = setting("VNB_CLUSTER_NAME", "vnode-batch-aks", "AKS cluster name.")
    location: str | None = setting(
        "VNB_LOCATION", None, "Region of the cluster and network (default: the resource group's)."
    )
    vnet_name: str = setting("VNB_VNET_NAME", "vnetAks", "Virtual network name.")
    vnet_cidr: str = setting("VNB_VNET_CIDR", "10.0.0.0/8", "Virtual network address space.")
    cluster_subnet_name: str = setting("VNB_CLUSTER_SUBNET_NAME", "AksSubnet", "Subnet of the AKS nodes (Azure CNI).")
    cluster_subnet_cidr: str = setting(
        "VNB_CLUSTER_SUBNET_CIDR", "10.240.0.0/16", "Address prefix of the cluster subnet."
    )
    vnode_subnet_name: str = setting(
        "VNB_VNODE_SUBNET_NAME", "vNodeSubnet", "Subnet of the virtual node (delegated to ACI)."
    )
    vnode_subnet_cidr: str = setting(
        "VNB_VNODE_SUBNET_CIDR", "10.241.0.0/16", "Address prefix of the virtual-node subnet."
    )
    service_cidr: str = setting("VNB_SERVICE_CIDR", "10.0.0.0/16", "Kubernetes service CIDR (must overlap no subnet).")
    dns_service_ip: str = setting(
        "VNB_DNS_SERVICE_IP", "10.0.0.10", "Cluster DNS service IP (inside the service CIDR, not its first address)."
    )
    node_count: int = setting("VNB_NODE_COUNT", 1, "System node pool size.")
    node_vm_size: str = setting("VNB_NODE_VM_SIZE", "Standard_D2s_v5", "System node VM size.")
    kubernetes_version: str | None = setting(
        "VNB_KUBERNETES_VERSION", None, "Kubernetes version (default: AKS's default)."
    )
    app_principal_id: str | None = setting(
        "VNB_APP_PRINCIPAL_ID",
        None,
        "Object id of the app's managed identity; bootstrap grants it AKS RBAC Writer on the namespace (aks mode).",
    )
    arm_endpoint: str = setting("VNB_ARM_ENDPOINT", "https://management.azure.com", "Azure Resource Manager endpoint.")
    bootstrap_defer_seconds: int = setting(
        "VNB_BOOTSTRAP_DEFER_SECONDS",
        30,
        "While the cluster is not ready, a request is re-enqueued with this visibility delay.",
    )
    bootstrap_max_wait_seconds: int = setting(
        "VNB_BOOTSTRAP_MAX_WAIT_SECONDS",
        3600,
        "A request waiting longer than this for the cluster ends in a `request.deadlettered` event.",
    )
    permission_grace_seconds: int = setting(
        "VNB_PERMISSION_GRACE_SECONDS",
        900,
        "A bootstrap step refused for a missing role keeps requests waiting this long before they are "
        "dead-lettered: new role assignments can take up to ~10 minutes to apply.",
    )
    ready_cache_seconds: float = setting(
        "VNB_READY_CACHE_SECONDS",
        60.0,
        "How long a process trusts a 'cluster ready' answer before asking ARM/Kubernetes again.",
    )

    @field_validator("vnet_cidr", "cluster_subnet_cidr", "vnode_subnet_cidr", "service_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            ipaddress.IPv4Network(value, strict=True)
        except ValueError as e:
            raise ValueError(f"not an IPv4 CIDR with host bits zero ({e})") from e
        return value

    @field_validator("dns_service_ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            ipaddress.IPv4Address(value)
        except ValueError as e:
            raise ValueError(f"not an IPv4 address ({e})") from e
        return value
