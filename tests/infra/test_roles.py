"""Role assignments: deterministic names, service principals, narrow scopes, the roles on each side.
What the cluster-side rights allow, claim by claim, is tests/infra/test_cluster_rights.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from shared.cluster import roles
from tests.infra.bicep_model import INFRA, REPO, ROLE_ASSIGNMENT, Template, all_resources
from tests.infra.cluster_rights import CLUSTER_RBAC, ROLE_DEFINITION, STEADY_STATE

APP_RBAC = INFRA / "app" / "rbac.bicep"

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"

_ANY_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def role_assignments() -> list[tuple[Path, str, dict[str, Any]]]:
    found = [(path, name, r["config"]) for path, name, r in all_resources() if r["type"] == ROLE_ASSIGNMENT]
    assert found, "no role assignments found in infra/"
    return found


def role_guid(path: Path, config: dict[str, Any]) -> str:
    """The role definition GUID of an assignment: subscriptionResourceId(..., <var>) resolved."""
    role_variable = _role_variable(config)
    template = Template(path)
    if any(r["config"]["name"] == role_variable for r in template.resources.values() if r["type"] == ROLE_DEFINITION):
        return STEADY_STATE  # the template's own custom role (tests/infra/test_cluster_rights.py)
    guid = template.resolve(role_variable)
    assert isinstance(guid, str), f"{path.name}: role id {role_variable!r} is not a literal"
    assert _ANY_GUID.fullmatch(guid), f"{path.name}: role id {role_variable!r} is not a GUID"
    return guid.lower()


def _role_variable(config: dict[str, Any]) -> str:
    function = config["properties"]["roleDefinitionId"]["function"]
    assert function["type"] == "subscription_resource_id", "roleDefinitionId: use subscriptionResourceId(...)"
    parameters = function["parameters"]
    assert parameters["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    assert parameters["resource_name_2"] is None
    assert parameters["subscription_id"] is None
    name: str = parameters["resource_name_1"]
    return name


def ids(item: tuple[Path, str, dict[str, Any]]) -> str:
    return f"{item[0].relative_to(REPO).as_posix()}:{item[1]}"


@pytest.mark.parametrize("item", role_assignments(), ids=ids)
def test_service_principal_and_deterministic_name(item: tuple[Path, str, dict[str, Any]]) -> None:
    path, name, config = item
    assert config["properties"]["principalType"] == "ServicePrincipal", f"{name}: principalType"
    guid_call = config["name"]["function"]
    assert guid_call["type"] == "guid", f"{name}: name must be guid(scope.id, principalId, roleId)"
    arguments = guid_call["parameters"]
    assert len(arguments) == 3, f"{name}: guid() takes exactly scope.id, principalId, roleId"
    scope_id, principal, role = arguments["base_string"], arguments["extra_string_1"], arguments["extra_string_2"]
    if "scope" in config:
        assert scope_id == {
            "operator": {"type": "property_accessor", "operands": {"operand_1": config["scope"], "operand_2": "id"}}
        }, f"{name}: first guid() argument must be {config['scope']}.id"
    else:
        operands = scope_id["operator"]["operands"]
        assert operands["operand_1"]["function"]["type"] == "resource_group", f"{name}: guid(resourceGroup().id, ...)"
        assert operands["operand_1"]["function"]["parameters"] == {"resource_group_name": None, "subscription_id": None}
        assert operands["operand_2"] == "id"
    assert principal == config["properties"]["principalId"] == "principalId", f"{name}: guid() principal argument"
    assert role == _role_variable(config), f"{name}: guid() role argument must be the assigned role"
    assert path.suffix == ".bicep"


def test_app_side_roles_are_scoped_to_one_resource_each() -> None:
    granted = {}
    for path, name, config in role_assignments():
        if path == APP_RBAC:
            assert config.get("scope") in ("storage", "applicationInsights"), f"{name}: scope must be a resource"
            granted[role_guid(path, config)] = config["scope"]
    assert granted == {
        roles.STORAGE_BLOB_DATA_OWNER: "storage",
        roles.STORAGE_QUEUE_DATA_CONTRIBUTOR: "storage",
        roles.STORAGE_TABLE_DATA_CONTRIBUTOR: "storage",
        roles.MONITORING_METRICS_PUBLISHER: "applicationInsights",
    }


def test_cluster_side_roles_are_the_bootstrap_only_roles_and_the_steady_state_role() -> None:
    granted = {role_guid(path, config) for path, _, config in role_assignments() if path == CLUSTER_RBAC}
    assert granted == set(roles.BOOTSTRAP_ONLY_ROLES) | {STEADY_STATE}


def test_no_broad_or_unconditioned_role_assignment_rights() -> None:
    for path, name, config in role_assignments():
        guid = role_guid(path, config)
        assert guid not in (OWNER, USER_ACCESS_ADMINISTRATOR, roles.CONTRIBUTOR), f"{name}: too broad"
        if guid == roles.RBAC_ADMINISTRATOR:
            assert config["properties"].get("condition"), f"{name}: RBAC Administrator without an ABAC condition"


def test_bicep_role_variables_match_shared_roles() -> None:
    """The GUIDs written in the Bicep are the ones the app's code uses."""
    constants = {
        "networkContributor": roles.NETWORK_CONTRIBUTOR,
        "aksContributor": roles.AKS_CONTRIBUTOR,
        "rbacAdministrator": roles.RBAC_ADMINISTRATOR,
        "storageBlobDataOwner": roles.STORAGE_BLOB_DATA_OWNER,
        "storageQueueDataContributor": roles.STORAGE_QUEUE_DATA_CONTRIBUTOR,
        "storageTableDataContributor": roles.STORAGE_TABLE_DATA_CONTRIBUTOR,
        "monitoringMetricsPublisher": roles.MONITORING_METRICS_PUBLISHER,
    }
    for path in (CLUSTER_RBAC, APP_RBAC):
        template = Template(path)
        for name in template.variables:
            if name in constants:
                assert template.resolve(name) == constants[name], f"{path.name}: {name}"


def test_shared_roles_constants_are_guids() -> None:
    assert roles.ASSIGNABLE_ROLES == (roles.NETWORK_CONTRIBUTOR, roles.AKS_RBAC_WRITER)
    assert roles.BOOTSTRAP_ONLY_ROLES[-1] == roles.RBAC_ADMINISTRATOR  # what allows the deletes goes last
    for name in dir(roles):
        value = getattr(roles, name)
        if name.isupper() and not name.startswith("_") and isinstance(value, str):
            assert _ANY_GUID.fullmatch(value), f"shared.cluster.roles.{name} is not a GUID"
    assert roles.role_definition_id("sub", roles.NETWORK_CONTRIBUTOR) == (
        "/subscriptions/sub/providers/Microsoft.Authorization/roleDefinitions/4d97b98b-1d4f-4787-a291-c67834d212e7"
    )


def test_the_app_identity_can_write_the_request_ledger() -> None:
    """The ledger (VNB_LEDGER_TABLE) is read and written with the app's identity: it needs Storage
    Table Data Contributor on the storage account, assigned to the identity's principal."""
    found = [
        config
        for path, _, config in role_assignments()
        if path == APP_RBAC and role_guid(path, config) == roles.STORAGE_TABLE_DATA_CONTRIBUTOR
    ]
    assert len(found) == 1
    assert found[0]["scope"] == "storage"
    assert found[0]["properties"]["principalId"] == "principalId"
