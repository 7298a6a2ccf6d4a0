"""The bootstrap's decisions, as values: each step's desired body, what to do given an
observation, and what an ARM failure means. No I/O, no patching."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
import yaml
from azure.mgmt.containerservice import models as cs
from azure.mgmt.network import models as nm

from shared.base.errors import ArmFault
from shared.cluster import roles
from shared.cluster.network import plan_for
from shared.cluster.plan.access import (
    app_namespace_grant,
    classify,
    cluster_subnet_grant,
    decide_role,
    vnode_subnet_grant,
)
from shared.cluster.plan.aks import cluster_body, cluster_principal, decide_addon, decide_cluster, dns_prefix
from shared.cluster.plan.namespace import (
    decide_namespace,
    decide_virtual_node,
    kube_endpoint,
    managed_namespace_body,
    network_policy_engine,
)
from shared.cluster.plan.steps import ACI_DELEGATION, Do, Step, Targets, decide_provider, targets_for
from shared.cluster.plan.vnet import decide_network, vnet_body
from shared.config.settings import Settings
from tests.conftest import make_env

SUB = "00000000-0000-0000-0000-000000000001"
APP = "11111111-1111-1111-1111-111111111111"
AKS_ENV = {
    "VNB_CLUSTER_MODE": "aks",
    "VNB_SUBSCRIPTION_ID": SUB,
    "VNB_RESOURCE_GROUP": "rg-aks",
    "VNB_APP_PRINCIPAL_ID": APP,
}


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(make_env(**AKS_ENV))


@pytest.fixture
def t(settings: Settings) -> Targets:
    return targets_for(settings)


def seed_plan(settings: Settings) -> Any:
    return plan_for(settings)


# --- desired bodies ----------------------------------------------------------------------


def test_cluster_body_is_what_the_sdk_models_of_the_brief_serialize_to(settings: Settings, t: Targets) -> None:
    # Written with the SDK's keyword models (azure-brief.md §1): same wire names, same values.
    expected = cs.ManagedCluster(
        location="westus",
        tags={"managed-by": "vnode-batch"},
        identity=cs.ManagedClusterIdentity(type="SystemAssigned"),
        dns_prefix="vnode-batch-aks",
        enable_rbac=True,
        agent_pool_profiles=[
            cs.ManagedClusterAgentPoolProfile(
                name="system",
                mode="System",
                count=1,
                vm_size="Standard_D2s_v5",
                os_type="Linux",
                type="VirtualMachineScaleSets",
                max_pods=30,
                vnet_subnet_id=t.cluster_subnet_id,
            )
        ],
        network_profile=cs.ContainerServiceNetworkProfile(
            network_plugin="azure", service_cidr="10.0.0.0/16", dns_service_ip="10.0.0.10"
        ),
        aad_profile=cs.ManagedClusterAADProfile(managed=True, enable_azure_rbac=True),
        disable_local_accounts=True,
    ).as_dict()
    assert cluster_body(settings, seed_plan(settings), t, "westus") == expected


def test_cluster_body_takes_the_kubernetes_version_when_set(t: Targets) -> None:
    s = Settings.from_env(make_env(**AKS_ENV, VNB_KUBERNETES_VERSION="1.33.2", VNB_NODE_COUNT="3"))
    body = cluster_body(s, plan_for(s), targets_for(s), "westus")
    assert body["properties"]["kubernetesVersion"] == "1.33.2"
    assert body["properties"]["agentPoolProfiles"][0]["count"] == 3
    assert (
        "kubernetesVersion"
        not in cluster_body(Settings.from_env(make_env(**AKS_ENV)), plan_for(s), t, "westus")["properties"]
    )


def test_vnet_body_carries_both_subnets_as_the_sdk_writes_them(settings: Settings) -> None:
    expected = nm.VirtualNetwork(
        location="westus",
        tags={"managed-by": "vnode-batch"},
        address_space=nm.AddressSpace(address_prefixes=["10.0.0.0/8"]),
        subnets=[
            nm.Subnet(name="AksSubnet", address_prefix="10.240.0.0/16"),
            # private by default from api-version 2025-07-01: egress is asked for explicitly
            nm.Subnet(name="vNodeSubnet", address_prefix="10.241.0.0/16", default_outbound_access=True),
        ],
    ).as_dict()
    assert vnet_body(seed_plan(settings), "westus") == expected


@pytest.mark.parametrize(
    ("name", "prefix"),
    [("vnode-batch-aks", "vnode-batch-aks"), ("My_Cluster.1", "My-Cluster-1"), ("-x-", "x"), ("a" * 70, "a" * 54)],
)
def test_dns_prefix(name: str, prefix: str) -> None:
    assert dns_prefix(name) == prefix


# --- provider ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "do"),
    [
        ("Registered", Do.NOTHING),
        ("Registering", Do.WAIT),
        ("NotRegistered", Do.REGISTER),
        ("Unregistered", Do.REGISTER),
        (None, Do.REGISTER),
    ],
)
def test_provider(state: str | None, do: Do) -> None:
    assert decide_provider(state).do is do


# --- network -------------------------------------------------------------------------------


def vnet(*subnets: dict[str, Any], space: str = "10.0.0.0/8", state: str = "Succeeded") -> dict[str, Any]:
    return {
        "name": "vnetAks",
        "properties": {
            "provisioningState": state,
            "addressSpace": {"addressPrefixes": [space]},
            "subnets": list(subnets),
        },
    }


def subnet(name: str, prefix: str, *delegations: str, state: str = "Succeeded") -> dict[str, Any]:
    return {
        "name": name,
        "properties": {
            "addressPrefix": prefix,
            "provisioningState": state,
            "delegations": [{"name": "d", "properties": {"serviceName": d}} for d in delegations],
        },
    }


AKS_SUBNET = subnet("AksSubnet", "10.240.0.0/16")
VNODE_SUBNET = subnet("vNodeSubnet", "10.241.0.0/16")


def test_no_vnet_means_create_it_with_both_subnets(settings: Settings) -> None:
    d = decide_network(None, seed_plan(settings), "westus")
    assert (d.do, d.resource) == (Do.CREATE, "vnet")
    assert d.body is not None
    assert [s["name"] for s in d.body["properties"]["subnets"]] == ["AksSubnet", "vNodeSubnet"]


def test_a_missing_subnet_is_created_alone_never_by_a_vnet_put(settings: Settings) -> None:
    d = decide_network(vnet(AKS_SUBNET, subnet("Other", "10.1.0.0/16")), seed_plan(settings), None)
    assert (d.do, d.resource) == (Do.CREATE, "subnet:vNodeSubnet")
    assert d.body == {"properties": {"addressPrefix": "10.241.0.0/16", "defaultOutboundAccess": True}}
    assert "replace" in d.why


NETWORK_CASES: list[tuple[str, dict[str, Any], Do, str]] = [
    ("as desired", vnet(AKS_SUBNET, VNODE_SUBNET), Do.NOTHING, ""),
    ("names compare case-insensitively", vnet(subnet("akssubnet", "10.240.0.0/16"), VNODE_SUBNET), Do.NOTHING, ""),
    (
        "vnode subnet delegated to ACI",
        vnet(AKS_SUBNET, subnet("vNodeSubnet", "10.241.0.0/16", ACI_DELEGATION)),
        Do.NOTHING,
        "",
    ),
    ("vnet updating", vnet(AKS_SUBNET, VNODE_SUBNET, state="Updating"), Do.WAIT, "Updating"),
    (
        "subnet updating",
        vnet(AKS_SUBNET, subnet("vNodeSubnet", "10.241.0.0/16", state="Updating")),
        Do.WAIT,
        "Updating",
    ),
    ("vnet failed", vnet(AKS_SUBNET, VNODE_SUBNET, state="Failed"), Do.BLOCKED, "Failed"),
    (
        "prefix differs",
        vnet(AKS_SUBNET, subnet("vNodeSubnet", "10.241.0.0/24")),
        Do.BLOCKED,
        "VNB_VNODE_SUBNET_CIDR=10.241.0.0/24",
    ),
    (
        "cluster subnet delegated",
        vnet(subnet("AksSubnet", "10.240.0.0/16", "Microsoft.Web/serverFarms")),
        Do.BLOCKED,
        "VNB_CLUSTER_SUBNET_NAME",
    ),
    (
        "vnode subnet delegated elsewhere",
        vnet(AKS_SUBNET, subnet("vNodeSubnet", "10.241.0.0/16", "Microsoft.Web/serverFarms")),
        Do.BLOCKED,
        "Microsoft.Web/serverFarms",
    ),
    (
        "address space too small",
        vnet(AKS_SUBNET, space="10.240.0.0/16"),
        Do.BLOCKED,
        "does not contain VNB_VNODE_SUBNET_CIDR",
    ),
    (
        "range taken by another subnet",
        vnet(AKS_SUBNET, subnet("Other", "10.241.0.0/20")),
        Do.BLOCKED,
        "overlaps subnet Other",
    ),
]


@pytest.mark.parametrize(("case", "observed", "do", "words"), NETWORK_CASES, ids=[c[0] for c in NETWORK_CASES])
def test_network(settings: Settings, case: str, observed: dict[str, Any], do: Do, words: str) -> None:
    d = decide_network(observed, seed_plan(settings), None)
    assert d.do is do, d.why
    assert words in d.why
    assert d.step is Step.NETWORK


# --- cluster -------------------------------------------------------------------------------


def observed_cluster(t: Targets, **props: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": t.cluster_id.replace("resourceGroups", "resourcegroups"),  # as AKS spells it
        "identity": {"type": "SystemAssigned", "principalId": "33333333-3333-3333-3333-333333333333"},
        "properties": {
            "provisioningState": "Succeeded",
            "powerState": {"code": "Running"},
            "agentPoolProfiles": [{"name": "system", "vnetSubnetID": t.cluster_subnet_id.lower()}],
            "networkProfile": {"networkPlugin": "azure", "serviceCidr": "10.0.0.0/16", "dnsServiceIP": "10.0.0.10"},
            "aadProfile": {"managed": True, "enableAzureRBAC": True},
            "disableLocalAccounts": True,
            "addonProfiles": {"azurepolicy": {"enabled": False}},
        },
    }
    base["properties"].update(props)
    return base


CLUSTER_CASES: list[tuple[str, dict[str, Any], Do, str]] = [
    ("as desired", {}, Do.NOTHING, ""),
    ("creating", {"provisioningState": "Creating"}, Do.WAIT, "Creating"),
    ("upgrading: it exists and serves its API", {"provisioningState": "Upgrading"}, Do.NOTHING, "Upgrading"),
    ("deleting", {"provisioningState": "Deleting"}, Do.WAIT, "Deleting"),
    (
        "updating, access to fix afterwards",
        {"provisioningState": "Updating", "disableLocalAccounts": False},
        Do.WAIT,
        "then: disable local accounts",
    ),
    ("failed", {"provisioningState": "Failed"}, Do.BLOCKED, "az aks update"),
    (
        "failed with AKS's error",
        {"provisioningState": "Failed", "status": {"provisioningError": {"code": "QuotaExceeded", "message": "m"}}},
        Do.BLOCKED,
        "QuotaExceeded",
    ),
    ("stopped: a request starts it", {"powerState": {"code": "Stopped"}}, Do.START, "start it"),
    ("stopping", {"provisioningState": "Stopping"}, Do.WAIT, "Stopping"),
    ("starting", {"provisioningState": "Starting", "powerState": {"code": "Stopped"}}, Do.WAIT, "Starting"),
    ("kubenet", {"networkProfile": {"networkPlugin": "kubenet"}}, Do.BLOCKED, "flat Azure CNI"),
    (
        "overlay",
        {"networkProfile": {"networkPlugin": "azure", "networkPluginMode": "overlay"}},
        Do.BLOCKED,
        "(overlay)",
    ),
    (
        "other service cidr",
        {"networkProfile": {"networkPlugin": "azure", "serviceCidr": "172.16.0.0/16"}},
        Do.BLOCKED,
        "VNB_SERVICE_CIDR=172.16.0.0/16",
    ),
    (
        "other dns ip",
        {"networkProfile": {"networkPlugin": "azure", "dnsServiceIP": "10.0.0.53"}},
        Do.BLOCKED,
        "VNB_DNS_SERVICE_IP=10.0.0.53",
    ),
    (
        "nodes elsewhere",
        {"agentPoolProfiles": [{"name": "p", "vnetSubnetID": "/x/subnets/other"}]},
        Do.BLOCKED,
        "no node pool",
    ),
    ("no Azure RBAC", {"aadProfile": None}, Do.UPDATE, "Entra ID with Azure RBAC"),
    ("local accounts on", {"disableLocalAccounts": False}, Do.UPDATE, "disable local accounts"),
]


@pytest.mark.parametrize(("case", "props", "do", "words"), CLUSTER_CASES, ids=[c[0] for c in CLUSTER_CASES])
def test_cluster(settings: Settings, t: Targets, case: str, props: dict[str, Any], do: Do, words: str) -> None:
    d = decide_cluster(observed_cluster(t, **props), seed_plan(settings), t, None)
    assert d.do is do, d.why
    assert words in d.why


def test_no_cluster_means_create_the_desired_one(settings: Settings, t: Targets) -> None:
    desired = cluster_body(settings, seed_plan(settings), t, "westus")
    d = decide_cluster(None, seed_plan(settings), t, desired)
    assert (d.do, d.body) == (Do.CREATE, desired)


def test_an_update_keeps_the_observed_cluster_and_fixes_only_access(settings: Settings, t: Targets) -> None:
    observed = observed_cluster(t, disableLocalAccounts=False, aadProfile={"managed": True})
    d = decide_cluster(observed, seed_plan(settings), t, None)
    assert d.body is not None
    assert d.body["properties"]["aadProfile"] == {"managed": True, "enableAzureRBAC": True}
    assert d.body["properties"]["disableLocalAccounts"] is True
    assert d.body["properties"]["networkProfile"] == observed["properties"]["networkProfile"]
    assert observed["properties"]["disableLocalAccounts"] is False  # the observation is not modified


def test_cluster_principal(t: Targets) -> None:
    assert cluster_principal(observed_cluster(t)) == "33333333-3333-3333-3333-333333333333"
    user = {"identity": {"type": "UserAssigned", "userAssignedIdentities": {"/id": {"principalId": "p"}}}}
    assert cluster_principal(user) == "p"
    assert cluster_principal(None) is None


# --- addon ---------------------------------------------------------------------------------


def test_addon_is_enabled_by_a_put_of_the_observed_cluster(settings: Settings, t: Targets) -> None:
    observed = observed_cluster(t)
    d = decide_addon(observed, seed_plan(settings), t)
    assert d.do is Do.UPDATE
    assert d.body is not None
    addons = d.body["properties"]["addonProfiles"]
    assert addons["aciConnectorLinux"] == {"enabled": True, "config": {"SubnetName": "vNodeSubnet"}}
    assert addons["azurepolicy"] == {"enabled": False}  # other addons untouched
    assert "aciConnectorLinux" not in observed["properties"]["addonProfiles"]


def with_aci(t: Targets, *, subnet: str = "vNodeSubnet", identity: bool = True, state: str = "Succeeded") -> Any:
    profile: dict[str, Any] = {"enabled": True, "config": {"SubnetName": subnet}}
    if identity:
        profile["identity"] = {"objectId": "44444444-4444-4444-4444-444444444444"}
    return observed_cluster(t, provisioningState=state, addonProfiles={"ACIConnectorLinux": profile})


ADDON_CASES = [
    ("enabled with identity", {"identity": True}, Do.NOTHING, "enabled"),
    ("being enabled", {"identity": False, "state": "Updating"}, Do.WAIT, "Updating"),
    ("failed", {"identity": False, "state": "Failed"}, Do.BLOCKED, "route table"),
    ("other subnet", {"subnet": "aci"}, Do.BLOCKED, "VNB_VNODE_SUBNET_NAME=aci"),
]


@pytest.mark.parametrize(("case", "kw", "do", "words"), ADDON_CASES, ids=[c[0] for c in ADDON_CASES])
def test_addon(settings: Settings, t: Targets, case: str, kw: dict[str, Any], do: Do, words: str) -> None:
    d = decide_addon(with_aci(t, **kw), seed_plan(settings), t)
    assert d.do is do, d.why
    assert words in d.why


def test_addon_waits_while_the_cluster_is_busy(settings: Settings, t: Targets) -> None:
    assert decide_addon(observed_cluster(t, provisioningState="Updating"), seed_plan(settings), t).do is Do.WAIT


# --- role assignments ---------------------------------------------------------------------


def test_role_assignment_names_are_deterministic_and_distinct(t: Targets) -> None:
    a = cluster_subnet_grant(t, "33333333-3333-3333-3333-333333333333")
    again = cluster_subnet_grant(
        Targets(**{**t.__dict__, "resource_group": "RG-AKS"}), "33333333-3333-3333-3333-333333333333".upper()
    )
    assert a.name == again.name  # same on every instance, whatever the casing of ids
    others = {
        a.name,
        vnode_subnet_grant(t, "33333333-3333-3333-3333-333333333333").name,
        cluster_subnet_grant(t, "55555555-5555-5555-5555-555555555555").name,
        app_namespace_grant(t).name,
    }
    assert len(others) == 4


def test_grants_are_least_privilege_and_for_service_principals(t: Targets) -> None:
    app = app_namespace_grant(t)
    assert app.scope == f"{t.cluster_id}/namespaces/vnode-batch"
    assert app.role == roles.AKS_RBAC_WRITER
    vnode = vnode_subnet_grant(t, "44444444-4444-4444-4444-444444444444")
    assert vnode.scope.endswith("/virtualNetworks/vnetAks/subnets/vNodeSubnet")
    assert vnode.role == roles.NETWORK_CONTRIBUTOR
    for grant in (app, vnode):
        assert grant.role in roles.ASSIGNABLE_ROLES
        assert grant.body["properties"]["principalType"] == "ServicePrincipal"
        assert grant.body["properties"]["roleDefinitionId"] == (
            f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{grant.role}"
        )


def test_decide_role(t: Targets) -> None:
    grant = app_namespace_grant(t)
    assert decide_role(grant, None).do is Do.CREATE
    assert decide_role(grant, copy.deepcopy(grant.body)).do is Do.NOTHING
    stolen = {"properties": {"principalId": "someone-else", "roleDefinitionId": grant.role_definition_id}}
    assert decide_role(grant, stolen).do is Do.BLOCKED


# --- the namespace (an AKS managed namespace, through ARM) and the virtual node ----------------


def test_managed_namespace_body_is_what_the_sdk_models_serialize_to(t: Targets) -> None:
    # A cluster without a network policy engine (the bootstrap's own): no defaultNetworkPolicy.
    expected = cs.ManagedNamespace(
        location="westus",
        tags={"managed-by": "vnode-batch"},
        properties=cs.NamespaceProperties(
            labels={
                "app.kubernetes.io/managed-by": "vnode-batch",
                # Pod Security: baseline enforced (the Job pods need nothing it forbids), restricted
                # warned and audited (enforcing it would refuse every image that runs as root).
                "pod-security.kubernetes.io/enforce": "baseline",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
            },
            adoption_policy="Always",  # a namespace made earlier (kubectl, older versions) is taken over
            delete_policy="Keep",  # deleting the ARM resource never deletes running Jobs
        ),
    ).as_dict()
    assert managed_namespace_body(t, "westus") == expected
    assert "defaultResourceQuota" not in expected["properties"]  # not required by the REST schema
    # With an engine: the policy `az aks namespace add` sends by default.
    with_engine = managed_namespace_body(t, "westus", network_policy="cilium")
    assert (
        with_engine["properties"]["defaultNetworkPolicy"]
        == cs.NetworkPolicies(ingress="AllowSameNamespace", egress="AllowAll").as_dict()
    )


@pytest.mark.parametrize(
    ("network_profile", "engine"),
    [
        ({"networkPlugin": "azure"}, None),
        ({"networkPlugin": "azure", "networkPolicy": "none"}, None),
        ({"networkPlugin": "azure", "networkPolicy": "azure"}, "azure"),
        ({"networkPlugin": "azure", "networkPolicy": "cilium"}, "cilium"),
    ],
)
def test_network_policy_engine(network_profile: dict[str, str], engine: str | None) -> None:
    assert network_policy_engine({"properties": {"networkProfile": network_profile}}) == engine
    assert network_policy_engine(None) is None


def test_the_namespace_id(t: Targets) -> None:
    assert t.managed_namespace_id == f"{t.cluster_id}/managedNamespaces/vnode-batch"


def managed_namespace(state: str, **props: Any) -> dict[str, Any]:
    return {"name": "vnode-batch", "properties": {"provisioningState": state, **props}}


NAMESPACE: list[tuple[str, dict[str, Any] | None, str, Do, str]] = [
    ("absent", None, "Succeeded", Do.CREATE, "create it through ARM"),
    ("absent, cluster busy", None, "Updating", Do.WAIT, "cluster Updating"),
    ("creating", managed_namespace("Creating"), "Succeeded", Do.WAIT, "is Creating"),
    ("updating", managed_namespace("Updating"), "Succeeded", Do.WAIT, "is Updating"),
    ("deleting", managed_namespace("Deleting"), "Succeeded", Do.WAIT, "is Deleting"),
    (
        "failed",
        managed_namespace("Failed", error={"code": "AdoptionFailed", "message": "differs"}),
        "Succeeded",
        Do.BLOCKED,
        "(AdoptionFailed: differs)",
    ),
    ("canceled", managed_namespace("Canceled"), "Succeeded", Do.BLOCKED, "az aks namespace delete -g rg-aks"),
    ("succeeded", managed_namespace("Succeeded"), "Succeeded", Do.NOTHING, "vnode-batch Succeeded"),
    (
        "succeeded, changed by an operator",
        managed_namespace("Succeeded", labels={}, defaultResourceQuota={"cpuLimit": "4000m"}, deletePolicy="Delete"),
        "Updating",
        Do.NOTHING,
        "Succeeded",
    ),
]


@pytest.mark.parametrize(("case", "observed", "cluster", "do", "words"), NAMESPACE, ids=[c[0] for c in NAMESPACE])
def test_namespace(t: Targets, case: str, observed: dict[str, Any] | None, cluster: str, do: Do, words: str) -> None:
    desired = managed_namespace_body(t, "westus")
    d = decide_namespace(observed, t, desired, cluster)
    assert d.do is do, d.why
    assert words in d.why, f"{case}: {words!r} not in {d.why!r}"
    assert d.step is Step.NAMESPACE
    assert d.resource == t.managed_namespace_id
    assert d.body == (desired if do is Do.CREATE else None)  # written only when absent: no PUT on a finished one


def test_virtual_node() -> None:
    assert decide_virtual_node(None).do is Do.WAIT
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert decide_virtual_node(ready).do is Do.NOTHING
    assert decide_virtual_node({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}).do is Do.WAIT


def user_kubeconfig(server: str = "https://aks.example:443", ca: bytes = b"CA") -> bytes:
    return yaml.safe_dump(
        {
            "clusters": [
                {
                    "name": "c",
                    "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca).decode()},
                }
            ],
            "users": [{"name": "u", "user": {"exec": {"command": "kubelogin", "args": ["get-token"]}}}],
        }
    ).encode()


def test_kube_endpoint_reads_only_the_cluster_entry() -> None:
    endpoint = kube_endpoint(user_kubeconfig())
    assert (endpoint.server, endpoint.ca_pem) == ("https://aks.example:443", b"CA")
    assert kube_endpoint(base64.b64encode(user_kubeconfig())) == endpoint  # still encoded: accepted
    with pytest.raises(ValueError, match="server"):
        kube_endpoint(user_kubeconfig(server=""))
    with pytest.raises(ValueError, match="not a kubeconfig"):
        kube_endpoint(b"hello")


# --- ARM failures -------------------------------------------------------------------------

RG_SCOPE = f"/subscriptions/{SUB}/resourceGroups/rg-aks"
SUBNET_SCOPE = f"{RG_SCOPE}/providers/Microsoft.Network/virtualNetworks/vnetAks/subnets/AksSubnet"


def denied(action: str, scope: str) -> ArmFault:
    return ArmFault(
        403,
        "AuthorizationFailed",
        f"The client 'c' with object id '{APP}' does not have authorization to perform action '{action}' over "
        f"scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
    )


CLASSIFY: list[tuple[str, ArmFault, Do, list[str]]] = [
    ("throttled", ArmFault(429, "SubscriptionRequestsThrottled", "slow down", 17.0), Do.WAIT, ["throttling", "17 s"]),
    (
        "operation in progress",
        ArmFault(409, "OperationNotAllowed", "there's an in progress create managed cluster operation"),
        Do.WAIT,
        ["in progress"],
    ),
    (
        "role assignments denied",
        denied("Microsoft.Authorization/roleAssignments/write", SUBNET_SCOPE),
        Do.BLOCKED,
        [
            f"grant Role Based Access Control Administrator (with the condition of infra/app/cluster-rbac.bicep: "
            f"Network Contributor to service principals and AKS RBAC Writer to the app itself only) on {RG_SCOPE} "
            f"to the app identity {APP}",
            f"the failed action was Microsoft.Authorization/roleAssignments/write over {SUBNET_SCOPE}",
            "once the cluster is ready; to build or change the cluster again, run `azd provision`",
        ],
    ),
    (
        "network denied",
        denied("Microsoft.Network/virtualNetworks/write", f"{RG_SCOPE}/providers/Microsoft.Network/virtualNetworks/v"),
        Do.BLOCKED,
        ["grant Network Contributor on", "virtualNetworks/write"],
    ),
    (
        "cluster denied",
        denied("Microsoft.ContainerService/managedClusters/write", RG_SCOPE),
        Do.BLOCKED,
        # a cluster deleted after the bootstrap gave its rights up: blocked, saying what brings them back
        ["Azure Kubernetes Service Contributor Role", "run `azd provision` (it assigns them again"],
    ),
    (
        "managed namespace denied",
        denied("Microsoft.ContainerService/managedClusters/managedNamespaces/write", RG_SCOPE),
        Do.BLOCKED,
        ["grant Azure Kubernetes Service Contributor Role", "Namespace Contributor", "managedNamespaces/write"],
    ),
    (
        "credentials denied",
        denied("Microsoft.ContainerService/managedClusters/listClusterUserCredential/action", RG_SCOPE),
        Do.BLOCKED,
        ["Azure Kubernetes Service Cluster User Role"],
    ),
    (
        "provider registration denied",
        denied("Microsoft.ContainerInstance/register/action", f"/subscriptions/{SUB}"),
        Do.BLOCKED,
        ["az provider register --namespace Microsoft.ContainerInstance"],
    ),
    (
        "subnet join denied",
        ArmFault(
            403,
            "LinkedAuthorizationFailed",
            f"The client 'c' with object id '{APP}' has permission to perform action "
            f"'Microsoft.ContainerService/managedClusters/write' on scope 'x'; however, it does not have permission to "
            f"perform action(s) 'Microsoft.Network/virtualNetworks/subnets/join/action' on the linked scope(s) "
            f"'{SUBNET_SCOPE}' (respectively) or the linked scope(s) are invalid.",
        ),
        Do.BLOCKED,
        ["grant Network Contributor", "subnets/join/action"],
    ),
    (
        "quota",
        ArmFault(400, "QuotaExceeded", "Operation could not be completed as it results in exceeding approved quota"),
        Do.BLOCKED,
        ["quota"],
    ),
    (
        "delegated subnet",
        ArmFault(400, "SubnetIsDelegated", "Subnet x is delegated"),
        Do.BLOCKED,
        ["VNB_CLUSTER_SUBNET_NAME"],
    ),
    (
        "not registered",
        ArmFault(
            400,
            "MissingSubscriptionRegistration",
            "The subscription is not registered to use namespace 'Microsoft.ContainerInstance'.",
        ),
        Do.WAIT,
        ["az provider register"],
    ),
    (
        "identity not replicated yet",
        ArmFault(400, "PrincipalNotFound", "Principal x does not exist"),
        Do.WAIT,
        ["replicate"],
    ),
    (
        "no resource group",
        ArmFault(404, "ResourceGroupNotFound", "Resource group 'rg-aks' could not be found."),
        Do.BLOCKED,
        ["azd up", "VNB_RESOURCE_GROUP"],
    ),
    ("ARM down", ArmFault(503, "ServiceUnavailable", "later"), Do.WAIT, ["503"]),
    ("no answer", ArmFault(None, "ServiceRequestError", "connection refused"), Do.WAIT, ["no answer"]),
    (
        "no credential",
        ArmFault(None, "CredentialUnavailable", "ManagedIdentityCredential unavailable"),
        Do.BLOCKED,
        ["managed identity"],
    ),
    ("bad request", ArmFault(400, "InvalidParameter", "vmSize is invalid"), Do.BLOCKED, ["vmSize is invalid", "VNB_"]),
]


@pytest.mark.parametrize(("case", "fault", "do", "words"), CLASSIFY, ids=[c[0] for c in CLASSIFY])
def test_classify(t: Targets, case: str, fault: ArmFault, do: Do, words: list[str]) -> None:
    d = classify(Step.CLUSTER_SUBNET_ROLE, fault, t)
    assert d.do is do, d.why
    for w in words:
        assert w in d.why, f"{case}: {w!r} not in {d.why!r}"
    assert d.reason.startswith("cluster-subnet-role: ")


# --- egress of the virtual-node subnet (private subnets by default) ----------------------------


def private(sub: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out = copy.deepcopy(sub)
    out["properties"].update({"defaultOutboundAccess": False, **extra})
    return out


def test_a_private_virtual_node_subnet_of_our_vnet_gets_default_outbound_access(settings: Settings) -> None:
    ours = {**vnet(AKS_SUBNET, private(VNODE_SUBNET)), "tags": {"managed-by": "vnode-batch"}}
    d = decide_network(ours, seed_plan(settings), None)
    assert (d.do, d.resource) == (Do.UPDATE, "subnet:vNodeSubnet")
    assert d.body == {
        "properties": {"addressPrefix": "10.241.0.0/16", "delegations": [], "defaultOutboundAccess": True}
    }


def test_an_update_keeps_the_aci_delegation_and_other_settings(settings: Settings) -> None:
    delegated = private(
        subnet("vNodeSubnet", "10.241.0.0/16", "Microsoft.ContainerInstance/containerGroups"),
        networkSecurityGroup={"id": "/nsg/x"},
        serviceAssociationLinks=[{"id": "/sal"}],
    )
    ours = {**vnet(AKS_SUBNET, delegated), "tags": {"managed-by": "vnode-batch"}}
    d = decide_network(ours, seed_plan(settings), None)
    assert d.body is not None
    props = d.body["properties"]
    assert props["delegations"] == [
        {"name": "d", "properties": {"serviceName": "Microsoft.ContainerInstance/containerGroups"}}
    ]
    assert props["networkSecurityGroup"] == {"id": "/nsg/x"}
    assert "serviceAssociationLinks" not in props  # read-only
    assert props["defaultOutboundAccess"] is True


def test_a_private_virtual_node_subnet_of_someone_elses_vnet_blocks_with_the_fix(settings: Settings) -> None:
    d = decide_network(vnet(AKS_SUBNET, private(VNODE_SUBNET)), seed_plan(settings), None)
    assert d.do is Do.BLOCKED
    assert "--default-outbound-access true" in d.why
    assert "NAT gateway" in d.why


@pytest.mark.parametrize(
    "extra", [{"natGateway": {"id": "/nat"}}, {"routeTable": {"id": "/rt"}}, {"defaultOutboundAccess": True}]
)
def test_explicit_egress_or_an_older_subnet_is_enough(settings: Settings, extra: dict[str, Any]) -> None:
    assert decide_network(vnet(AKS_SUBNET, private(VNODE_SUBNET, **extra)), seed_plan(settings), None).done
    assert decide_network(vnet(AKS_SUBNET, VNODE_SUBNET), seed_plan(settings), None).done  # no property: not private


def test_a_private_cluster_subnet_is_fine(settings: Settings) -> None:
    # AKS nodes leave through the cluster's standard load balancer (outboundType loadBalancer).
    assert decide_network(vnet(private(AKS_SUBNET), VNODE_SUBNET), seed_plan(settings), None).done
