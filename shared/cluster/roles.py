"""Azure built-in role definition GUIDs the app and its infrastructure refer to.

The GUIDs are the same in every tenant and cloud. A role definition id for an ARM call is
``/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}``
(see :func:`role_definition_id`).

``ASSIGNABLE_ROLES`` is the contract between the bootstrap code and ``infra/``: the app's
identity holds Role Based Access Control Administrator on the cluster resource group, limited
by an ABAC condition to exactly these roles. ``tests/infra`` checks that the condition in the
Bicep lists every role here and no other, so widening what bootstrap assigns means changing
this tuple and the condition together.
"""

from __future__ import annotations

from typing import Final

# --- roles the bootstrap assigns (must match the ABAC condition in infra/) --------------------

NETWORK_CONTRIBUTOR: Final[str] = "4d97b98b-1d4f-4787-a291-c67834d212e7"
"""Network Contributor. Bootstrap grants it to the cluster identity on the cluster subnet and to
the virtual-node addon identity (``aciconnectorlinux-<cluster>``) on the virtual-node subnet.
The app's own identity also holds it on the cluster resource group to create the vnet."""

AKS_RBAC_WRITER: Final[str] = "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb"
"""Azure Kubernetes Service RBAC Writer. Bootstrap grants it to the app's identity on
``{clusterId}/namespaces/{namespace}`` so it can create Jobs and read pods and logs there."""

ASSIGNABLE_ROLES: Final[tuple[str, ...]] = (NETWORK_CONTRIBUTOR, AKS_RBAC_WRITER)
"""Every role the bootstrap code may assign; the ABAC condition allows these and nothing else."""

# --- roles infra/ gives the app's identity on the cluster resource group ----------------------

AKS_CONTRIBUTOR: Final[str] = "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8"
"""Azure Kubernetes Service Contributor Role: create and update managed clusters (and, since
its 2024 revision, ``managedClusters/*``, which includes listing user credentials)."""

AKS_CLUSTER_USER: Final[str] = "4abbcc35-e782-43d8-92c5-2d3f1bd2253f"
"""Azure Kubernetes Service Cluster User Role: ``listClusterUserCredential``. No longer assigned by
infra/ (the steady-state custom role has that action); deployments made before keep it, harmlessly."""

RBAC_ADMINISTRATOR: Final[str] = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
"""Role Based Access Control Administrator: assign and delete role assignments. Always held
with an ABAC condition: assign only ``ASSIGNABLE_ROLES`` (Network Contributor to service
principals, AKS RBAC Writer to the app's own principal), delete only the app's own
``BOOTSTRAP_ONLY_ROLES`` assignments (infra/app/cluster-rbac.bicep)."""

BOOTSTRAP_ONLY_ROLES: Final[tuple[str, ...]] = (NETWORK_CONTRIBUTOR, AKS_CONTRIBUTOR, RBAC_ADMINISTRATOR)
"""The roles infra/ gives the app on the cluster resource group for building the cluster, which the
bootstrap's last step deletes (its own assignments, at that group) once the cluster is ready, in
this order: RBAC Administrator last, since it is what allows the deletes. ``azd provision``
assigns them again. The ABAC condition allows deleting exactly these, of the app's own principal."""

STEADY_STATE_ACTIONS: Final[tuple[str, ...]] = (
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Network/virtualNetworks/read",
    "Microsoft.ContainerService/managedClusters/read",
    "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
    "Microsoft.ContainerService/managedClusters/start/action",
    "Microsoft.ContainerService/managedClusters/stop/action",
    "Microsoft.ContainerService/managedClusters/managedNamespaces/read",
    "Microsoft.Authorization/roleAssignments/read",
)
"""The actions of the app's custom steady-state role on the cluster resource group (infra/, the role
``vnode-batch steady state``; tests/infra keeps the two equal). Exactly the ARM calls the app makes
once the cluster exists: the bootstrap's re-check (GET vnet, GET cluster, GET role assignments, GET
managed namespace, listClusterUserCredential) and the idle stop/start (POST stop, POST start); and
GET resource group, which the bootstrap makes before creating anything (its location), so that a
cluster deleted later fails on the write that needs the bootstrap roles, whose 403 names them.
Operation names: "Azure permissions for Containers",
learn.microsoft.com/azure/role-based-access-control/permissions/containers, and "Azure permissions
for Networking" / "... for Management and governance" (Microsoft.Authorization)."""

# --- roles infra/ gives the app's identity on its own storage and monitoring ------------------

STORAGE_BLOB_DATA_OWNER: Final[str] = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
"""Storage Blob Data Owner: the Functions host's blob use (leases, keys) and the Flex
Consumption deployment package container."""

STORAGE_QUEUE_DATA_CONTRIBUTOR: Final[str] = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
"""Storage Queue Data Contributor: queue trigger, output, re-enqueue and queue creation."""

STORAGE_TABLE_DATA_CONTRIBUTOR: Final[str] = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
"""Storage Table Data Contributor: the Functions host writes its diagnostic events to tables."""

MONITORING_METRICS_PUBLISHER: Final[str] = "3913510d-42f4-4e42-8a64-420c390055eb"
"""Monitoring Metrics Publisher: Entra ID-authenticated ingestion into Application Insights."""

# --- other well-known roles (never assigned by this project) ----------------------------------

CONTRIBUTOR: Final[str] = "b24988ac-6180-42a0-ab88-20f7382dd24c"
"""Contributor. Not used: it cannot assign roles, and it is far broader than bootstrap needs."""

AKS_CLUSTER_ADMIN: Final[str] = "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8"
"""Azure Kubernetes Service Cluster Admin Role. Not used: local accounts are disabled."""

AKS_RBAC_READER: Final[str] = "7f6c6a51-bcf8-42ba-9220-52d62157d7db"
"""Azure Kubernetes Service RBAC Reader (read-only access to a namespace)."""

_ROLE_DEFINITION = "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def role_definition_id(subscription_id: str, guid: str) -> str:
    """The ARM id of a built-in role definition, as role assignment calls expect it."""
    return _ROLE_DEFINITION.format(subscription=subscription_id, guid=guid)
