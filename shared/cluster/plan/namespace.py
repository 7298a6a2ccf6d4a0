"""Steps 8 and 9: the app namespace (an AKS managed namespace, ARM) and the virtual node (Kubernetes); the user kubeconfig's endpoint. Pure."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from shared.base.conventions import ARM_TAGS, NAMESPACE_LABELS, VIRTUAL_NODE_NAME
from shared.cluster.plan.steps import IN_PROGRESS_STATES, Decision, Do, Step, Targets

NAMESPACE_NETWORK_POLICY = {"ingress": "AllowSameNamespace", "egress": "AllowAll"}


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
    if state.lower() in IN_PROGRESS_STATES:
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
