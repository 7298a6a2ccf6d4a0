"""The virtual-node subnet keeps internet egress (private subnets by default from network
api-version 2025-07-01), against the ARM stand-in with the app's real SDK clients."""

from __future__ import annotations

import pytest
from azure.identity import DefaultAzureCredential
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as nm

from tests.integration.bootstrap_fixtures import *  # noqa: F403
from tests.integration.bootstrap_fixtures import RG, AksWorld, drive

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

VNET = "vnetAks"


def subnet_id(aks: AksWorld, name: str) -> str:
    return f"/subscriptions/{aks.arm.subscription_id}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/{VNET}/subnets/{name}"


def precreate_private_network(aks: AksWorld, *, tags: dict[str, str] | None) -> None:
    """A vnet whose virtual-node subnet was created with the pinned SDK without the property
    (as the app did before): private, so ACI container groups there would have no egress."""
    network = NetworkManagementClient(DefaultAzureCredential(), aks.arm.subscription_id, base_url=aks.arm.url)
    network.virtual_networks.begin_create_or_update(
        RG,
        VNET,
        nm.VirtualNetwork(
            location="westus",
            tags=tags,
            address_space=nm.AddressSpace(address_prefixes=["10.0.0.0/8"]),
            subnets=[
                nm.Subnet(name="AksSubnet", address_prefix="10.240.0.0/16"),
                nm.Subnet(name="vNodeSubnet", address_prefix="10.241.0.0/16"),
            ],
        ),
    ).result()
    assert not aks.arm.has_egress(subnet_id(aks, "vNodeSubnet"))


def test_the_bootstrap_creates_the_virtual_node_subnet_with_outbound_access(aks: AksWorld) -> None:
    readiness, reasons = drive(aks.gate())
    assert readiness.cluster is not None, reasons
    assert aks.arm.has_egress(subnet_id(aks, "vNodeSubnet"))
    [put] = aks.puts(r"/virtualNetworks/vnetAks$")
    subnets = {s["name"]: s["properties"] for s in put.body["properties"]["subnets"]}
    assert subnets["vNodeSubnet"]["defaultOutboundAccess"] is True
    # The cluster subnet is left private: the nodes leave through the AKS load balancer.
    assert "defaultOutboundAccess" not in subnets["AksSubnet"]
    assert put.api_version is not None
    assert put.api_version >= "2025-07-01"  # the pinned SDK speaks the private-by-default API


def test_a_private_virtual_node_subnet_the_app_made_earlier_is_given_outbound_access(aks: AksWorld) -> None:
    precreate_private_network(aks, tags={"managed-by": "vnode-batch"})
    readiness, reasons = drive(aks.gate())
    assert readiness.cluster is not None, reasons
    assert aks.arm.has_egress(subnet_id(aks, "vNodeSubnet"))
    assert len(aks.puts(r"/subnets/vNodeSubnet$")) == 1


def test_a_private_virtual_node_subnet_in_someone_elses_vnet_is_reported_not_changed(aks: AksWorld) -> None:
    precreate_private_network(aks, tags=None)
    readiness, _ = drive(aks.gate())
    assert readiness.hopeless
    assert readiness.reason.startswith("network: subnet vNodeSubnet of vnet vnetAks is private")
    assert "--default-outbound-access true" in readiness.reason
    assert aks.puts(r"/subnets/") == []
    assert not aks.arm.has_egress(subnet_id(aks, "vNodeSubnet"))


def test_the_managed_namespace_body_is_what_az_aks_namespace_add_sends_less_what_does_not_apply(
    aks: AksWorld,
) -> None:
    readiness, reasons = drive(aks.gate())
    assert readiness.cluster is not None, reasons
    [put] = aks.puts(r"/managedNamespaces/vnode-batch$")
    cluster = aks.arm.get(aks.cluster_id)
    assert cluster is not None
    assert "networkPolicy" not in cluster["properties"]["networkProfile"]  # the bootstrap sets no engine
    assert put.body["location"] == cluster["location"]  # as the CLI: the cluster's location
    props = put.body["properties"]
    assert "defaultNetworkPolicy" not in props  # the stand-in refuses it without an engine
    assert "defaultResourceQuota" not in props  # optional in the REST schema
    assert (props["adoptionPolicy"], props["deletePolicy"]) == ("Always", "Keep")
