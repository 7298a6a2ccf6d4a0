"""Static facts the ARM stand-in serves: built-in roles, resource providers, error helpers."""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

# Built-in role definitions (azure-brief.md §1 plus Owner/Reader, the AKS RBAC admin roles, AKS Contributor
# and the two managed-namespace roles; actions as published in the role definitions).
BUILTIN_ROLES: dict[str, tuple[str, list[str]]] = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": ("Owner", ["*"]),
    "b24988ac-6180-42a0-ab88-20f7382dd24c": ("Contributor", ["*"]),
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": ("Reader", ["*/read"]),
    "4d97b98b-1d4f-4787-a291-c67834d212e7": (
        "Network Contributor",
        [
            "Microsoft.Authorization/*/read",
            "Microsoft.Network/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
    ),
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": (
        "Role Based Access Control Administrator",
        ["Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete", "*/read"],
    ),
    "4abbcc35-e782-43d8-92c5-2d3f1bd2253f": (
        "Azure Kubernetes Service Cluster User Role",
        [
            "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
            "Microsoft.ContainerService/managedClusters/read",
        ],
    ),
    "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8": (
        "Azure Kubernetes Service Cluster Admin Role",
        [
            "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
            "Microsoft.ContainerService/managedClusters/accessProfiles/listCredential/action",
            "Microsoft.ContainerService/managedClusters/read",
        ],
    ),
    "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8": (
        "Azure Kubernetes Service Contributor Role",
        [
            "Microsoft.Authorization/*/read",
            "Microsoft.ContainerService/locations/*",
            "Microsoft.ContainerService/managedClusters/*",
            "Microsoft.ContainerService/managedclustersnapshots/*",
            "Microsoft.ContainerService/snapshots/*",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.ContainerService/deploymentSafeguards/*",
        ],
    ),
    "289d8817-ee69-43f1-a0af-43a45505b488": (
        "Azure Kubernetes Service Namespace Contributor",
        [
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.ContainerService/managedClusters/managedNamespaces/*",
            "Microsoft.Resources/deployments/*",
        ],
    ),
    "c9f76ca8-b262-4b10-8ed2-09cf0948aa35": (
        "Azure Kubernetes Service Namespace User",
        [
            "Microsoft.ContainerService/managedClusters/managedNamespaces/read",
            "Microsoft.ContainerService/managedClusters/managedNamespaces/listCredential/action",
        ],
    ),
    "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb": (
        "Azure Kubernetes Service RBAC Writer",
        ["Microsoft.Authorization/*/read", "Microsoft.Resources/subscriptions/operationresults/read"],
    ),
    "7f6c6a51-bcf8-42ba-9220-52d62157d7db": (
        "Azure Kubernetes Service RBAC Reader",
        ["Microsoft.Authorization/*/read", "Microsoft.Resources/subscriptions/operationresults/read"],
    ),
    "3498e952-d568-435e-9b2c-8d77e338d7f7": (
        "Azure Kubernetes Service RBAC Admin",
        ["Microsoft.Authorization/*/read", "Microsoft.Resources/subscriptions/operationresults/read"],
    ),
    "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b": (
        "Azure Kubernetes Service RBAC Cluster Admin",
        ["Microsoft.Authorization/*/read", "Microsoft.Resources/subscriptions/operationresults/read"],
    ),
}

ROLE_NAMES_BY_ID = {guid: name for guid, (name, _) in BUILTIN_ROLES.items()}


def role_definition_body(subscription_id: str, guid: str) -> dict[str, Any]:
    name, actions = BUILTIN_ROLES[guid]
    return {
        "id": f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
        "name": guid,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": name,
            "type": "BuiltInRole",
            "description": f"{name} (ARM stand-in built-in role)",
            "assignableScopes": ["/"],
            "permissions": [{"actions": actions, "notActions": [], "dataActions": [], "notDataActions": []}],
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2024-01-01T00:00:00.0000000Z",
            "createdBy": None,
            "updatedBy": None,
        },
    }


# Resource providers: namespace -> (default registration state, resource types).
PROVIDERS: dict[str, tuple[str, list[str]]] = {
    "Microsoft.ContainerInstance": ("NotRegistered", ["containerGroups", "locations", "operations"]),
    "Microsoft.ContainerService": ("Registered", ["managedClusters", "locations", "operations"]),
    "Microsoft.Network": ("Registered", ["virtualNetworks", "locations", "operations"]),
    "Microsoft.Authorization": ("Registered", ["roleAssignments", "roleDefinitions"]),
    "Microsoft.Resources": ("Registered", ["resourceGroups", "subscriptions"]),
    "Microsoft.ManagedIdentity": ("Registered", ["userAssignedIdentities"]),
}

ACI_DELEGATION_SERVICE = "Microsoft.ContainerInstance/containerGroups"
DEFAULT_KUBERNETES_VERSION = "1.32.7"
_STABLE_NS = uuid.UUID("3f1c1e0e-7a55-4a57-9d0b-6a9a4fd3c0de")


def stable_guid(*parts: str) -> str:
    """Deterministic GUID for a resource-derived identity (stable per cluster id)."""
    return str(uuid.uuid5(_STABLE_NS, "/".join(p.lower() for p in parts)))


def is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", value))


@dataclass
class ArmError(Exception):
    """An ARM error response: ``{"error": {"code", "message"}}`` with a status code."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    details: list[dict[str, Any]] | None = None

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            err["details"] = self.details
        return {"error": err}


def parse_network(prefix: Any, *, resource: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Parse a CIDR as the network RP does: host bits set -> InvalidCIDRNotation."""
    if not isinstance(prefix, str):
        raise ArmError(
            400, "InvalidAddressPrefixFormat", f"Address prefix {prefix!r} of resource {resource} is invalid."
        )
    try:
        return ipaddress.ip_network(prefix, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            raise ArmError(
                400,
                "InvalidAddressPrefixFormat",
                f"Address prefix {prefix} of resource {resource} is not formatted correctly.",
            ) from None
        raise ArmError(
            400,
            "InvalidCIDRNotation",
            f"The address prefix {prefix} in resource {resource} has an invalid CIDR notation. "
            f"For the given prefix length, the address prefix should be {loose}.",
        ) from None


def networks_overlap(
    a: ipaddress.IPv4Network | ipaddress.IPv6Network, b: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> bool:
    return a.version == b.version and a.overlaps(b)


def within(
    inner: ipaddress.IPv4Network | ipaddress.IPv6Network, outer: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> bool:
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]
