"""The ARM stand-in, driven by the real management SDKs and the real DefaultAzureCredential.

Everything goes over loopback sockets: HTTPS (test CA) for ARM, plain HTTP for the App Service
managed-identity endpoint. The environment is set with monkeypatch exactly as the app would see it.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import yaml
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.containerservice import models as cs
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as nm
from azure.mgmt.resource.resources import ResourceManagementClient

from devtools.standins.arm.standin import AKS_AAD_SERVER_APP_ID, CREDENTIAL_ENV_CONFLICTS, ArmStandIn
from devtools.tls import shared_ca

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

RG = "rg-aks"
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
AKS_RBAC_WRITER = "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb"
KUBE_SERVER = "https://127.0.0.1:6443"
KUBE_CA = b"-----BEGIN CERTIFICATE-----\nTESTCA\n-----END CERTIFICATE-----\n"


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


@pytest.fixture
def make_arm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ArmStandIn]]:
    started: list[ArmStandIn] = []

    def make(**kwargs: Any) -> ArmStandIn:
        kwargs.setdefault("kubeconfig_cluster", (KUBE_SERVER, KUBE_CA))
        arm = ArmStandIn(**kwargs).start()
        started.append(arm)
        for name in CREDENTIAL_ENV_CONFLICTS:
            monkeypatch.delenv(name, raising=False)
        for name, value in arm.credential_env().items():
            monkeypatch.setenv(name, value)
        arm.create_resource_group("rg-Aks", "westus")  # ARM matches group names case-insensitively
        return arm

    yield make
    for arm in started:
        arm.stop()


@pytest.fixture
def arm(make_arm: Callable[..., ArmStandIn]) -> ArmStandIn:
    return make_arm()


class Clients:
    def __init__(self, arm: ArmStandIn) -> None:
        cred = DefaultAzureCredential()
        sub = arm.subscription_id
        self.cred = cred
        self.resource = ResourceManagementClient(cred, sub, base_url=arm.url)
        self.network = NetworkManagementClient(cred, sub, base_url=arm.url)
        self.aks = ContainerServiceClient(cred, sub, base_url=arm.url)
        self.auth = AuthorizationManagementClient(cred, sub, base_url=arm.url)


def _vnet(subnets: list[nm.Subnet] | None = None) -> nm.VirtualNetwork:
    return nm.VirtualNetwork(
        location="westus",
        address_space=nm.AddressSpace(address_prefixes=["10.0.0.0/8"]),
        subnets=subnets,
    )


def _network(c: Clients) -> tuple[str, str]:
    vnet = c.network.virtual_networks.begin_create_or_update(
        RG, "vnetAks", _vnet([nm.Subnet(name="AksSubnet", address_prefix="10.240.0.0/16")])
    ).result()
    vnode = c.network.subnets.begin_create_or_update(
        RG, "vnetAks", "vNodeSubnet", nm.Subnet(address_prefix="10.241.0.0/16")
    ).result()
    return vnet.subnets[0].id, vnode.id


def _cluster(
    aks_subnet_id: str, *, addon: bool, plugin: str = "azure", network_policy: str | None = None
) -> cs.ManagedCluster:
    return cs.ManagedCluster(
        location="westus",
        dns_prefix="aks",
        identity=cs.ManagedClusterIdentity(type="SystemAssigned"),
        agent_pool_profiles=[
            cs.ManagedClusterAgentPoolProfile(
                name="system",
                mode="System",
                count=1,
                vm_size="Standard_D4s_v5",
                os_type="Linux",
                vnet_subnet_id=aks_subnet_id,
            )
        ],
        network_profile=cs.ContainerServiceNetworkProfile(
            network_plugin=plugin,
            service_cidr="10.0.0.0/16",
            dns_service_ip="10.0.0.10",
            network_policy=network_policy,
        ),
        addon_profiles=(
            {"aciConnectorLinux": cs.ManagedClusterAddonProfile(enabled=True, config={"SubnetName": "vNodeSubnet"})}
            if addon
            else None
        ),
        aad_profile=cs.ManagedClusterAADProfile(managed=True, enable_azure_rbac=True),
        disable_local_accounts=True,
    )


def _register_aci(arm: ArmStandIn, c: Clients) -> None:
    arm.grant(
        arm.app_principal_id, f"/subscriptions/{arm.subscription_id}", ["Microsoft.ContainerInstance/register/action"]
    )
    c.resource.providers.register("Microsoft.ContainerInstance")
    _wait_for(lambda: c.resource.providers.get("Microsoft.ContainerInstance").registration_state == "Registered")


def _code(exc: HttpResponseError) -> str | None:
    return exc.error.code if exc.error else None


# ---------------------------------------------------------------------------------------- identity
def test_default_azure_credential_gets_tokens_from_the_identity_endpoint(make_arm: Callable[..., ArmStandIn]) -> None:
    arm = make_arm(token_lifetime_seconds=120)  # < 5 min: MSAL and azure-core treat it as due for refresh
    cred = DefaultAzureCredential()

    arm_token = cred.get_token("https://management.azure.com/.default")
    assert arm.validate_token(arm_token.token, "https://management.azure.com") == arm.app_principal_id
    assert arm.validate_token(arm_token.token, AKS_AAD_SERVER_APP_ID) is None

    kube_token = cred.get_token(f"{AKS_AAD_SERVER_APP_ID}/.default")
    assert arm.validate_token(kube_token.token, AKS_AAD_SERVER_APP_ID) == arm.app_principal_id
    validator = arm.kube_token_validator()
    assert validator(kube_token.token)
    assert not validator(arm_token.token)
    assert not validator(None)
    assert not validator("forged")

    again = cred.get_token(f"{AKS_AAD_SERVER_APP_ID}/.default")
    assert again.token != kube_token.token  # short-lived tokens are fetched again
    calls = arm.token_requests
    assert [r.resource for r in calls] == ["https://management.azure.com", AKS_AAD_SERVER_APP_ID, AKS_AAD_SERVER_APP_ID]
    assert {r.client_id for r in calls} == {arm.app_client_id}
    assert {r.status for r in calls} == {200}


def test_unauthenticated_and_wrong_audience_requests_get_401(arm: ArmStandIn) -> None:
    url = f"{arm.url}/subscriptions/{arm.subscription_id}/resourcegroups/{RG}?api-version=2025-04-01"
    verify = str(shared_ca().ca_path)

    anonymous = requests.get(url, verify=verify, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "AuthenticationFailed"

    kube_only = arm.issue_token(arm.app_principal_id, AKS_AAD_SERVER_APP_ID)
    wrong = requests.get(url, headers={"Authorization": f"Bearer {kube_only}"}, verify=verify, timeout=10)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"

    ok = requests.get(
        url, headers={"Authorization": f"Bearer {arm.issue_token(arm.app_principal_id)}"}, verify=verify, timeout=10
    )
    assert ok.status_code == 200
    assert ok.json()["name"] == "rg-Aks"


# ---------------------------------------------------------------------------------------- providers
def test_provider_registration_progresses_and_needs_subscription_scope(arm: ArmStandIn) -> None:
    c = Clients(arm)
    assert c.resource.resource_groups.check_existence("RG-AKS")
    assert c.resource.providers.get("Microsoft.ContainerService").registration_state == "Registered"
    assert c.resource.providers.get("Microsoft.ContainerInstance").registration_state == "NotRegistered"

    with pytest.raises(HttpResponseError) as denied:  # the app's default rights stop at its resource group
        c.resource.providers.register("Microsoft.ContainerInstance")
    assert denied.value.status_code == 403
    assert "'Microsoft.ContainerInstance/register/action' over scope" in str(denied.value)

    arm.grant(
        arm.app_principal_id, f"/subscriptions/{arm.subscription_id}", ["Microsoft.ContainerInstance/register/action"]
    )
    assert c.resource.providers.register("Microsoft.ContainerInstance").registration_state == "Registering"
    _wait_for(lambda: c.resource.providers.get("Microsoft.ContainerInstance").registration_state == "Registered")


# ---------------------------------------------------------------------------------------- network
def test_vnet_and_subnets_with_arm_validation(arm: ArmStandIn) -> None:
    c = Clients(arm)
    aks_subnet_id, vnode_id = _network(c)

    vnet = c.network.virtual_networks.get(RG, "vnetAks")
    assert vnet.provisioning_state == "Succeeded"
    assert sorted(s.name for s in vnet.subnets) == ["AksSubnet", "vNodeSubnet"]
    subnet = c.network.subnets.get(RG, "vnetAks", "vNodeSubnet")
    assert subnet.address_prefix == "10.241.0.0/16"
    assert subnet.id == vnode_id
    assert [s.name for s in c.network.subnets.list(RG, "vnetAks")] == ["AksSubnet", "vNodeSubnet"]

    with pytest.raises(HttpResponseError) as overlap:
        c.network.subnets.begin_create_or_update(RG, "vnetAks", "clash", nm.Subnet(address_prefix="10.241.128.0/24"))
    assert overlap.value.status_code == 400
    assert _code(overlap.value) == "NetcfgSubnetRangesOverlap"

    with pytest.raises(HttpResponseError) as outside:
        c.network.subnets.begin_create_or_update(RG, "vnetAks", "outside", nm.Subnet(address_prefix="192.168.0.0/24"))
    assert outside.value.status_code == 400
    assert _code(outside.value) == "NetcfgInvalidSubnet"

    with pytest.raises(HttpResponseError) as host_bits:
        c.network.subnets.begin_create_or_update(RG, "vnetAks", "sloppy", nm.Subnet(address_prefix="10.242.0.1/16"))
    assert _code(host_bits.value) == "InvalidCIDRNotation"

    # ARM trap: a vnet PUT without "subnets" deletes the existing (unused) subnets.
    c.network.virtual_networks.begin_create_or_update(RG, "vnetAks", _vnet()).result()
    assert c.network.virtual_networks.get(RG, "vnetAks").subnets == []
    assert arm.get(aks_subnet_id) is None


def test_subnets_created_at_network_api_2025_07_01_or_later_are_private(arm: ArmStandIn) -> None:
    c = Clients(arm)
    c.network.virtual_networks.begin_create_or_update(RG, "vnetAks", _vnet()).result()
    # The pinned SDK's api-version (2026-03-01) and no property: private, no egress.
    private = c.network.subnets.begin_create_or_update(
        RG, "vnetAks", "private", nm.Subnet(address_prefix="10.1.0.0/24")
    ).result()
    assert private.default_outbound_access is False
    assert not arm.has_egress(private.id)
    # Opting in, or an explicit outbound method, gives egress.
    opted = c.network.subnets.begin_create_or_update(
        RG, "vnetAks", "opted", nm.Subnet(address_prefix="10.2.0.0/24", default_outbound_access=True)
    ).result()
    assert opted.default_outbound_access is True
    assert arm.has_egress(opted.id)
    nat = c.network.subnets.begin_create_or_update(
        RG, "vnetAks", "nat", nm.Subnet(address_prefix="10.3.0.0/24", nat_gateway=nm.SubResource(id="/x/natGateways/n"))
    ).result()
    assert arm.has_egress(nat.id)
    # An older api-version leaves the property unset: default outbound access, as before.
    older = c.network.subnets.begin_create_or_update(
        RG, "vnetAks", "older", nm.Subnet(address_prefix="10.4.0.0/24"), api_version="2024-05-01"
    ).result()
    assert older.default_outbound_access is None
    assert arm.has_egress(older.id)
    # A later PUT without the property keeps what the subnet had; a PUT with it changes it.
    again = c.network.subnets.begin_create_or_update(
        RG, "vnetAks", "older", nm.Subnet(address_prefix="10.4.0.0/24")
    ).result()
    assert again.default_outbound_access is None
    fixed = c.network.subnets.begin_create_or_update(
        RG, "vnetAks", "private", nm.Subnet(address_prefix="10.1.0.0/24", default_outbound_access=True)
    ).result()
    assert arm.has_egress(fixed.id)


# ---------------------------------------------------------------------------------------- clusters
def test_cluster_create_is_an_lro_awaited_with_result(arm: ArmStandIn) -> None:
    c = Clients(arm)
    aks_subnet_id, _ = _network(c)
    mc = c.aks.managed_clusters.begin_create_or_update(RG, "aks", _cluster(aks_subnet_id, addon=False)).result()
    assert mc.provisioning_state == "Succeeded"
    assert mc.identity.principal_id
    assert mc.identity.tenant_id == arm.tenant_id
    assert mc.fqdn
    assert mc.node_resource_group == "MC_rg-Aks_aks_westus"
    assert mc.network_profile.network_plugin == "azure"
    assert mc.network_profile.dns_service_ip == "10.0.0.10"
    assert mc.aad_profile.enable_azure_rbac
    assert mc.disable_local_accounts
    again = c.aks.managed_clusters.get(RG, "aks")
    assert again.identity.principal_id == mc.identity.principal_id  # stable per cluster
    assert [x.name for x in c.aks.managed_clusters.list_by_resource_group(RG)] == ["aks"]

    with pytest.raises(HttpResponseError) as in_use:  # the vnet-PUT-without-subnets trap, once a subnet is used
        c.network.virtual_networks.begin_create_or_update(RG, "vnetAks", _vnet())
    assert _code(in_use.value) == "InUseSubnetCannotBeDeleted"

    put = next(r for r in arm.write_requests() if r.path.endswith("/managedClusters/aks"))
    assert (put.method, put.status, put.api_version) == ("PUT", 201, "2026-08-01")


def test_cluster_create_observed_without_waiting_and_concurrent_put_conflicts(
    make_arm: Callable[..., ArmStandIn],
) -> None:
    arm = make_arm(cluster_create_seconds=1.5)
    c = Clients(arm)
    aks_subnet_id, _ = _network(c)
    poller = c.aks.managed_clusters.begin_create_or_update(RG, "aks", _cluster(aks_subnet_id, addon=False))
    assert not poller.done()
    assert c.aks.managed_clusters.get(RG, "aks").provisioning_state == "Creating"

    with pytest.raises(ResourceExistsError) as conflict:
        c.aks.managed_clusters.begin_create_or_update(RG, "aks", _cluster(aks_subnet_id, addon=False))
    assert conflict.value.status_code == 409
    assert _code(conflict.value) == "OperationNotAllowed"
    assert "in progress create managed cluster operation" in str(conflict.value)

    _wait_for(lambda: c.aks.managed_clusters.get(RG, "aks").provisioning_state == "Succeeded")
    poller.wait()
    assert poller.status() == "Succeeded"


def test_addon_enable_assigns_identity_calls_hook_and_delegates_subnet(make_arm: Callable[..., ArmStandIn]) -> None:
    calls: list[str] = []
    arm = make_arm(on_virtual_node_enabled=lambda: calls.append("virtual-node"))
    c = Clients(arm)
    aks_subnet_id, vnode_id = _network(c)
    c.aks.managed_clusters.begin_create_or_update(RG, "aks", _cluster(aks_subnet_id, addon=False)).result()

    mc = c.aks.managed_clusters.get(RG, "aks")
    mc.addon_profiles = {
        "aciConnectorLinux": cs.ManagedClusterAddonProfile(enabled=True, config={"SubnetName": "vNodeSubnet"})
    }
    with pytest.raises(HttpResponseError) as unregistered:  # the provider must be registered first
        c.aks.managed_clusters.begin_create_or_update(RG, "aks", mc)
    assert _code(unregistered.value) == "MissingSubscriptionRegistration"

    _register_aci(arm, c)
    assert arm.get(vnode_id)["properties"]["delegations"] == []  # type: ignore[index]
    updated = c.aks.managed_clusters.begin_create_or_update(RG, "aks", mc).result()

    addon = updated.addon_profiles["aciConnectorLinux"]
    assert addon.enabled
    assert addon.config == {"SubnetName": "vNodeSubnet"}
    assert addon.identity.object_id
    assert addon.identity.client_id
    assert addon.identity.resource_id.endswith("/userAssignedIdentities/aciconnectorlinux-aks")
    assert calls == ["virtual-node"]
    subnet = c.network.subnets.get(RG, "vnetAks", "vNodeSubnet")
    assert [d.service_name for d in subnet.delegations] == ["Microsoft.ContainerInstance/containerGroups"]

    with pytest.raises(HttpResponseError) as undelegate:  # the connector's service association link needs it
        c.network.subnets.begin_create_or_update(
            RG, "vnetAks", "vNodeSubnet", nm.Subnet(address_prefix="10.241.0.0/16")
        )
    assert _code(undelegate.value) == "SubnetMissingRequiredDelegation"

    # a second, unrelated update keeps the identity and does not fire the hook again
    mc2 = c.aks.managed_clusters.get(RG, "aks")
    mc2.tags = {"owner": "vnode-batch"}
    kept = c.aks.managed_clusters.begin_create_or_update(RG, "aks", mc2).result()
    assert kept.addon_profiles["aciConnectorLinux"].identity.object_id == addon.identity.object_id
    assert calls == ["virtual-node"]


def test_virtual_node_validation_and_delegation_conflict(arm: ArmStandIn) -> None:
    c = Clients(arm)
    aks_subnet_id, _ = _network(c)
    _register_aci(arm, c)

    with pytest.raises(HttpResponseError) as kubenet:
        c.aks.managed_clusters.begin_create_or_update(RG, "aks", _cluster(aks_subnet_id, addon=True, plugin="kubenet"))
    assert kubenet.value.status_code == 400

    bad_dns = _cluster(aks_subnet_id, addon=False)
    bad_dns.network_profile.dns_service_ip = "10.1.0.10"
    with pytest.raises(HttpResponseError) as dns:
        c.aks.managed_clusters.begin_create_or_update(RG, "aks", bad_dns)
    assert dns.value.status_code == 400

    missing = _cluster(aks_subnet_id, addon=True)
    missing.addon_profiles["aciConnectorLinux"].config = {"SubnetName": "nope"}
    with pytest.raises(HttpResponseError) as no_subnet:
        c.aks.managed_clusters.begin_create_or_update(RG, "aks", missing)
    assert no_subnet.value.status_code == 400

    c.network.subnets.begin_create_or_update(
        RG,
        "vnetAks",
        "vNodeSubnet",
        nm.Subnet(
            address_prefix="10.241.0.0/16",
            delegations=[nm.Delegation(name="web", service_name="Microsoft.Web/serverFarms")],
        ),
    ).result()
    poller = c.aks.managed_clusters.begin_create_or_update(RG, "aks", _cluster(aks_subnet_id, addon=True))
    with pytest.raises(HttpResponseError) as failed:
        poller.result()
    assert "SubnetDelegationConflict" in str(failed.value)
    assert c.aks.managed_clusters.get(RG, "aks").provisioning_state == "Failed"


def test_user_kubeconfig_carries_server_and_ca_and_admin_is_refused(arm: ArmStandIn) -> None:
    c = Clients(arm)
    aks_subnet_id, _ = _network(c)
    c.aks.managed_clusters.begin_create_or_update(RG, "aks", _cluster(aks_subnet_id, addon=False)).result()

    creds = c.aks.managed_clusters.list_cluster_user_credentials(RG, "aks")
    raw = creds.kubeconfigs[0].value
    assert isinstance(raw, bytes)
    kubeconfig = yaml.safe_load(raw)
    cluster = kubeconfig["clusters"][0]["cluster"]
    assert cluster["server"] == KUBE_SERVER
    assert base64.b64decode(cluster["certificate-authority-data"]) == KUBE_CA
    exec_args = kubeconfig["users"][0]["user"]["exec"]["args"]
    assert exec_args[exec_args.index("--server-id") + 1] == AKS_AAD_SERVER_APP_ID

    with pytest.raises(HttpResponseError) as admin:
        c.aks.managed_clusters.list_cluster_admin_credentials(RG, "aks")
    assert admin.value.status_code == 400
    assert "disable local accounts" in str(admin.value)
    assert not [r for r in arm.write_requests() if "listCluster" in r.path]


# ---------------------------------------------------------------------------------------- roles
def test_role_assignments_exists_conflict_and_revoked_403(arm: ArmStandIn) -> None:
    c = Clients(arm)
    _, vnode_id = _network(c)
    principal = str(uuid.uuid4())  # a fresh identity the directory does not know yet
    role_id = (
        f"/subscriptions/{arm.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{NETWORK_CONTRIBUTOR}"
    )
    params = RoleAssignmentCreateParameters(
        role_definition_id=role_id, principal_id=principal, principal_type="ServicePrincipal"
    )
    name = str(uuid.uuid4())
    ra = c.auth.role_assignments.create(vnode_id, name, params)
    assert ra.principal_type == "ServicePrincipal"
    assert ra.scope.lower() == vnode_id.lower()
    assert c.auth.role_assignments.get(vnode_id, name).principal_id == principal
    listed = list(c.auth.role_assignments.list_for_scope(vnode_id, filter=f"principalId eq '{principal}'"))
    assert [x.name for x in listed] == [name]
    assert c.auth.role_definitions.get(f"/subscriptions/{arm.subscription_id}", NETWORK_CONTRIBUTOR).role_name == (
        "Network Contributor"
    )

    with pytest.raises(HttpResponseError) as exists:
        c.auth.role_assignments.create(vnode_id, str(uuid.uuid4()), params)
    assert exists.value.status_code == 409
    assert _code(exists.value) == "RoleAssignmentExists"
    assert "The role assignment already exists." in str(exists.value)

    arm.revoke(arm.app_principal_id, "Microsoft.Authorization/roleAssignments/write")
    other = str(uuid.uuid4())
    with pytest.raises(HttpResponseError) as denied:
        c.auth.role_assignments.create(vnode_id, other, params)
    assert denied.value.status_code == 403
    assert _code(denied.value) == "AuthorizationFailed"
    scope = f"{vnode_id}/providers/Microsoft.Authorization/roleAssignments/{other}"
    assert (
        f"The client '{arm.app_client_id}' with object id '{arm.app_principal_id}' does not have authorization to "
        f"perform action 'Microsoft.Authorization/roleAssignments/write' over scope '{scope}' or the scope is "
        "invalid. If access was recently granted, please refresh your credentials."
    ) in str(denied.value)


def test_namespace_scopes_of_azure_rbac_need_only_the_cluster(arm: ArmStandIn) -> None:
    c = Clients(arm)
    aks_subnet_id, _ = _network(c)
    cluster_id = (
        f"/subscriptions/{arm.subscription_id}/resourceGroups/{RG}/providers/Microsoft.ContainerService/"
        "managedClusters/aks"
    )
    params = RoleAssignmentCreateParameters(
        role_definition_id=(
            f"/subscriptions/{arm.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{AKS_RBAC_WRITER}"
        ),
        principal_id=arm.app_principal_id,
        principal_type="ServicePrincipal",
    )
    with pytest.raises(HttpResponseError) as no_cluster:  # the namespace's cluster must exist
        c.auth.role_assignments.create(f"{cluster_id}/namespaces/team", str(uuid.uuid4()), params)
    assert (no_cluster.value.status_code, _code(no_cluster.value)) == (404, "ResourceNotFound")

    c.aks.managed_clusters.begin_create_or_update(RG, "aks", _cluster(aks_subnet_id, addon=False)).result()
    # Azure RBAC for Kubernetes' per-namespace scope, and the managed-namespaces docs' one: accepted
    # on an existing cluster whether or not the namespace exists yet.
    for scope in (f"{cluster_id}/namespaces/team", f"{cluster_id}/managedNamespaces/team"):
        name = str(uuid.uuid4())
        ra = c.auth.role_assignments.create(scope, name, params)
        assert ra.scope == scope
        assert c.auth.role_assignments.get(scope, name).principal_id == arm.app_principal_id
    with pytest.raises(HttpResponseError) as other_cluster:
        c.auth.role_assignments.create(f"{cluster_id}-2/namespaces/team", str(uuid.uuid4()), params)
    assert other_cluster.value.status_code == 404


def _namespace(**properties: Any) -> cs.ManagedNamespace:
    return cs.ManagedNamespace(
        location="westus",
        tags={"managed-by": "test"},
        properties=cs.NamespaceProperties(
            labels={"team": "a"}, adoption_policy="Always", delete_policy="Keep", **properties
        ),
    )


def test_managed_namespace_is_an_lro_under_a_succeeded_cluster_and_calls_the_hook(
    make_arm: Callable[..., ArmStandIn],
) -> None:
    created: list[str] = []
    deleted: list[str] = []
    arm = make_arm(on_namespace_created=created.append, on_namespace_deleted=deleted.append, namespace_seconds=0.3)
    c = Clients(arm)
    aks_subnet_id, _ = _network(c)
    with pytest.raises(HttpResponseError) as no_parent:
        c.aks.managed_namespaces.begin_create_or_update(RG, "aks", "team", _namespace(), polling=False)
    assert (no_parent.value.status_code, _code(no_parent.value)) == (404, "ParentResourceNotFound")

    creating = c.aks.managed_clusters.begin_create_or_update(RG, "aks", _cluster(aks_subnet_id, addon=False))
    with pytest.raises(HttpResponseError) as still_creating:  # not Succeeded yet
        c.aks.managed_namespaces.begin_create_or_update(RG, "aks", "team", _namespace(), polling=False)
    assert _code(still_creating.value) == "ParentResourceNotFound"
    creating.result()

    # Started without waiting (what the app does), then observed through provisioningState.
    c.aks.managed_namespaces.begin_create_or_update(RG, "aks", "team", _namespace(), polling=False)
    first = c.aks.managed_namespaces.get(RG, "aks", "team")
    assert first.properties.provisioning_state == "Creating"
    assert created == []
    with pytest.raises(ResourceExistsError) as busy:
        c.aks.managed_namespaces.begin_create_or_update(RG, "aks", "team", _namespace(), polling=False)
    assert "in progress create managed namespace operation" in str(busy.value)
    _wait_for(lambda: c.aks.managed_namespaces.get(RG, "aks", "team").properties.provisioning_state == "Succeeded")
    assert created == ["team"]  # the namespace is in the cluster before ARM says Succeeded

    ns = c.aks.managed_namespaces.get(RG, "aks", "team")
    assert ns.id.endswith("/managedClusters/aks/managedNamespaces/team")
    assert ns.type == "Microsoft.ContainerService/managedClusters/managedNamespaces"
    assert ns.properties.labels == {"team": "a"}
    assert ns.properties.default_network_policy is None  # no network policy engine on this cluster
    assert ns.properties.default_resource_quota is None  # optional in the REST schema
    assert [x.name for x in c.aks.managed_namespaces.list_by_managed_cluster(RG, "aks")] == ["team"]
    puts = [r for r in arm.write_requests() if r.path.endswith("/managedNamespaces/team")]
    assert [r.status for r in puts] == [404, 404, 201, 409]
    put = puts[2]
    assert (put.method, put.api_version) == ("PUT", "2026-08-01")
    assert "provisioningState" not in put.body["properties"]  # read-only fields are not sent

    updated = c.aks.managed_namespaces.begin_create_or_update(
        RG, "aks", "team", _namespace(default_resource_quota=cs.ResourceQuota(cpu_request="1000m"))
    ).result()  # the SDK's own poller completes too
    assert updated.properties.default_resource_quota.cpu_request == "1000m"
    assert created == ["team", "team"]

    with pytest.raises(HttpResponseError) as system:
        c.aks.managed_namespaces.begin_create_or_update(RG, "aks", "kube-system", _namespace(), polling=False)
    assert (system.value.status_code, _code(system.value)) == (400, "InvalidParameter")

    arm.revoke(arm.app_principal_id, "Microsoft.ContainerService/managedClusters/managedNamespaces/write")
    with pytest.raises(HttpResponseError) as denied:
        c.aks.managed_namespaces.begin_create_or_update(RG, "aks", "other", _namespace(), polling=False)
    assert denied.value.status_code == 403
    assert "'Microsoft.ContainerService/managedClusters/managedNamespaces/write' over scope" in str(denied.value)

    c.aks.managed_namespaces.begin_delete(RG, "aks", "team").result()
    assert deleted == []  # deletePolicy Keep: the Kubernetes namespace stays
    with pytest.raises(ResourceNotFoundError):
        c.aks.managed_namespaces.get(RG, "aks", "team")


def test_a_managed_namespace_network_policy_needs_a_network_policy_engine(arm: ArmStandIn) -> None:
    c = Clients(arm)
    aks_subnet_id, _ = _network(c)
    c.aks.managed_clusters.begin_create_or_update(RG, "aks", _cluster(aks_subnet_id, addon=False)).result()
    policy = cs.NetworkPolicies(ingress="AllowSameNamespace", egress="AllowAll")
    with pytest.raises(HttpResponseError) as refused:
        c.aks.managed_namespaces.begin_create_or_update(
            RG, "aks", "team", _namespace(default_network_policy=policy), polling=False
        )
    assert (refused.value.status_code, _code(refused.value)) == (400, "InvalidParameter")
    assert "network policy engine" in str(refused.value)
    # Without the policy (and without a quota, which the schema does not require): accepted.
    made = c.aks.managed_namespaces.begin_create_or_update(RG, "aks", "team", _namespace()).result()
    assert made.properties.provisioning_state == "Succeeded"

    c.aks.managed_clusters.begin_create_or_update(
        RG, "aks2", _cluster(aks_subnet_id, addon=False, network_policy="cilium")
    ).result()
    with_engine = c.aks.managed_namespaces.begin_create_or_update(
        RG, "aks2", "team", _namespace(default_network_policy=cs.NetworkPolicies(ingress="DenyAll"))
    ).result()
    assert (
        with_engine.properties.default_network_policy.ingress,
        with_engine.properties.default_network_policy.egress,
    ) == (
        "DenyAll",
        "AllowAll",  # the CLI's default for the direction left out
    )


# ---------------------------------------------------------------------------------------- faults
def test_sdk_retry_policy_survives_throttling_and_a_5xx(arm: ArmStandIn) -> None:
    c = Clients(arm)
    arm.throttle(2, retry_after_seconds=0.2, path_regex=r"/virtualNetworks/vnetAks$")
    arm.fail(1, status=503, path_regex=r"/resourcegroups/[^/]+$", method="GET")
    vnet = c.network.virtual_networks.begin_create_or_update(RG, "vnetAks", _vnet()).result()
    assert vnet.name == "vnetAks"
    assert c.resource.resource_groups.get(RG).name == "rg-Aks"

    puts = [r.status for r in arm.requests if r.method == "PUT"]
    assert puts == [429, 429, 201]
    rg_gets = [
        r.status
        for r in arm.requests
        if r.method == "GET" and "/resourcegroups/" in r.path.lower() and "/providers/" not in r.path
    ]
    assert rg_gets == [503, 200]
