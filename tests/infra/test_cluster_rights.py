"""docs/deploy.md's rights table, claim by claim, over the Bicep: the rights of
infra/app/cluster-rbac.bicep (parsed, the condition with the app's principal id filled in) are put into
an ARM stand-in (not started: its authorization is asked directly), which evaluates role definitions
and ABAC conditions as ARM does (devtools/standins/arm/authorization.py, conditions.py).

"During bootstrap" is the template as deployed; "after bootstrap" is the same with the app's own
bootstrap-only assignments deleted, which is what the bootstrap's last step does (the end-to-end
version of both is tests/integration/test_rights.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from devtools.standins.arm.conditions import parse, role_assignment_attributes
from devtools.standins.arm.standin import ArmStandIn
from shared.cluster import roles
from tests.infra.bicep_model import REPO
from tests.infra.cluster_rights import STEADY_STATE, cluster_rights, deploy

APP = "11111111-1111-1111-1111-111111111111"
CLUSTER_IDENTITY = "33333333-3333-3333-3333-333333333333"
OTHER_APP = "44444444-4444-4444-4444-444444444444"
USER = "55555555-5555-5555-5555-555555555555"
SUB = "00000000-0000-0000-0000-000000000001"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/rg-aks"
CLUSTER_ID = f"{RG_ID}/providers/Microsoft.ContainerService/managedClusters/vnode-batch-aks"
NAMESPACE_SCOPE = f"{CLUSTER_ID}/namespaces/vnode-batch"
SUBNET = f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/vnetAks/subnets/AksSubnet"

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
AKS_RBAC_CLUSTER_ADMIN = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
AKS_RBAC_ADMIN = "3498e952-d568-435e-9b2c-8d77e338d7f7"
WRITE = "Microsoft.Authorization/roleAssignments/write"
DELETE = "Microsoft.Authorization/roleAssignments/delete"
AKS = "Microsoft.ContainerService/managedClusters"


@pytest.fixture
def arm() -> Iterator[ArmStandIn]:
    """During bootstrap: the template's rights, as `azd provision` leaves them."""
    stand_in = ArmStandIn(app_principal_id=APP, app_rights="assigned")
    stand_in.register_principal(USER, principal_type="User")
    deploy(stand_in, APP, RG_ID)
    yield stand_in
    stand_in.stop()


@pytest.fixture
def after(arm: ArmStandIn) -> ArmStandIn:
    """After bootstrap: the app's own bootstrap-only assignments deleted, its namespace grant made."""
    for assignment in arm.role_assignments():
        role = assignment["properties"]["roleDefinitionId"].rsplit("/", 1)[-1]
        if role in roles.BOOTSTRAP_ONLY_ROLES:
            arm._role_assignments.pop(assignment["id"].lower())
    arm.assign_role(APP, NAMESPACE_SCOPE, roles.AKS_RBAC_WRITER)
    return arm


def assign(arm: ArmStandIn, role: str, principal: str, scope: str, principal_type: str = "ServicePrincipal") -> bool:
    body = {"roleDefinitionId": f"/x/{role}", "principalId": principal, "principalType": principal_type}
    target = f"{scope}/providers/Microsoft.Authorization/roleAssignments/0b6e4a0e-0000-4000-8000-000000000001"
    return arm.is_authorized(APP, WRITE, target, role_assignment_attributes("Request", body))


def delete(arm: ArmStandIn, assignment_id: str) -> bool:
    stored = next(a for a in arm.role_assignments() if a["id"] == assignment_id)
    return arm.is_authorized(APP, DELETE, assignment_id, role_assignment_attributes("Resource", stored["properties"]))


def test_the_condition_parses_with_the_documented_grammar() -> None:
    # A condition the stand-in cannot parse would refuse everything (fail closed) and hide the claims.
    condition = cluster_rights(APP).by_role(roles.RBAC_ADMINISTRATOR).condition
    assert condition is not None
    parse(condition)
    assert cluster_rights(APP).by_role(roles.RBAC_ADMINISTRATOR).condition_version == "2.0"


# --- during bootstrap -------------------------------------------------------------------------------
def test_bootstrap_can_grant_network_contributor_to_the_cluster_identities(arm: ArmStandIn) -> None:
    assert assign(arm, roles.NETWORK_CONTRIBUTOR, CLUSTER_IDENTITY, SUBNET)


def test_bootstrap_cannot_grant_to_users_or_groups(arm: ArmStandIn) -> None:
    assert not assign(arm, roles.NETWORK_CONTRIBUTOR, USER, SUBNET, principal_type="User")
    assert not assign(arm, roles.NETWORK_CONTRIBUTOR, USER, SUBNET, principal_type="Group")


def test_bootstrap_can_grant_rbac_writer_to_itself_at_any_scope_of_the_group(arm: ArmStandIn) -> None:
    assert assign(arm, roles.AKS_RBAC_WRITER, APP, NAMESPACE_SCOPE)
    # The documented gap: no condition attribute names the scope, so cluster scope passes too
    # (while the bootstrap holds RBAC Administrator; test_after_bootstrap_* shows it closes).
    assert assign(arm, roles.AKS_RBAC_WRITER, APP, CLUSTER_ID)


def test_bootstrap_cannot_grant_rbac_writer_to_another_principal(arm: ArmStandIn) -> None:
    assert not assign(arm, roles.AKS_RBAC_WRITER, OTHER_APP, NAMESPACE_SCOPE)


@pytest.mark.parametrize(
    "role",
    [
        OWNER,
        roles.CONTRIBUTOR,
        USER_ACCESS_ADMINISTRATOR,
        roles.RBAC_ADMINISTRATOR,
        roles.AKS_CONTRIBUTOR,
        roles.AKS_CLUSTER_ADMIN,
        AKS_RBAC_CLUSTER_ADMIN,
        AKS_RBAC_ADMIN,
        roles.AKS_RBAC_READER,
    ],
)
def test_bootstrap_cannot_grant_any_other_role_even_to_itself(arm: ArmStandIn, role: str) -> None:
    assert not assign(arm, role, APP, CLUSTER_ID)
    assert not assign(arm, role, OTHER_APP, CLUSTER_ID)


def test_bootstrap_can_delete_exactly_its_own_bootstrap_only_assignments(arm: ArmStandIn) -> None:
    ids = deploy(arm, APP, RG_ID)  # the same names again: the ids of the template's assignments
    for role in roles.BOOTSTRAP_ONLY_ROLES:
        assert delete(arm, ids[role]), role
    assert not delete(arm, ids[STEADY_STATE])
    others = [
        arm.assign_role(CLUSTER_IDENTITY, SUBNET, roles.NETWORK_CONTRIBUTOR),  # the cluster's own grant
        arm.assign_role(APP, NAMESPACE_SCOPE, roles.AKS_RBAC_WRITER),  # the app's namespace grant
        arm.assign_role(OTHER_APP, RG_ID, roles.AKS_CONTRIBUTOR),  # someone else's
    ]
    for other in others:
        assert not delete(arm, other), other


def test_bootstrap_holds_cluster_write_while_it_builds(arm: ArmStandIn) -> None:
    for action in ("write", "listClusterAdminCredential/action", "runCommand/action"):
        assert arm.is_authorized(APP, f"{AKS}/{action}", CLUSTER_ID), action


# --- after bootstrap ----------------------------------------------------------------------------------
@pytest.mark.parametrize("principal", [APP, OTHER_APP])
def test_after_bootstrap_no_role_assignment_can_be_written_or_deleted(after: ArmStandIn, principal: str) -> None:
    for role in (roles.AKS_RBAC_WRITER, roles.NETWORK_CONTRIBUTOR, OWNER):
        for scope in (CLUSTER_ID, NAMESPACE_SCOPE, RG_ID):
            assert not assign(after, role, principal, scope), (role, scope)
    for assignment in after.role_assignments():
        assert not delete(after, assignment["id"]), assignment["id"]
    assert not after.is_authorized(APP, "Microsoft.Authorization/roleDefinitions/write", RG_ID)


@pytest.mark.parametrize(
    "action",
    [
        f"{AKS}/write",
        f"{AKS}/delete",
        f"{AKS}/listClusterAdminCredential/action",
        f"{AKS}/runCommand/action",
        f"{AKS}/accessProfiles/listCredential/action",
        f"{AKS}/managedNamespaces/write",
        f"{AKS}/managedNamespaces/listCredential/action",
        "Microsoft.Network/virtualNetworks/write",
        "Microsoft.Network/virtualNetworks/subnets/join/action",
    ],
)
def test_after_bootstrap_the_cluster_cannot_be_changed_or_administered(after: ArmStandIn, action: str) -> None:
    assert not after.is_authorized(APP, action, CLUSTER_ID)
    assert not after.is_authorized(APP, action, SUBNET)


@pytest.mark.parametrize("action", roles.STEADY_STATE_ACTIONS)
def test_after_bootstrap_the_steady_state_calls_are_allowed(after: ArmStandIn, action: str) -> None:
    scope = f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/vnetAks" if "Network" in action else CLUSTER_ID
    assert after.is_authorized(APP, action, scope)


def test_the_steady_state_role_is_exactly_the_apps_steady_state_calls() -> None:
    rights = cluster_rights(APP)
    assert rights.steady_state_actions == list(roles.STEADY_STATE_ACTIONS)
    assert rights.steady_state_not_actions == []
    assert not any("*" in action for action in rights.steady_state_actions)
    assert rights.steady_state["assignableScopes"] == [
        {
            "operator": {
                "type": "property_accessor",
                "operands": {
                    "operand_1": {
                        "function": {
                            "type": "resource_group",
                            "parameters": {"resource_group_name": None, "subscription_id": None},
                        }
                    },
                    "operand_2": "id",
                },
            }
        }
    ], "assignable only in the cluster resource group"


def test_every_claim_of_the_deploy_docs_rights_table_names_a_test_that_exists() -> None:
    doc = (REPO / "docs" / "deploy.md").read_text()
    table = doc.split("| when | claim | holds? | test |", 1)[1].split("\n\n", 1)[0]
    rows = [row for row in table.splitlines() if row.startswith("|") and not row.startswith("|---")]
    assert len(rows) >= 14
    defined = {
        match
        for path in (REPO / "tests").rglob("test_*.py")
        for match in re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE)
    }
    for row in rows:
        named = re.findall(r"`(test_\w+)`", row)
        assert named, f"a claim without a test: {row[:80]}"
        assert set(named) <= defined, f"{set(named) - defined} named in docs/deploy.md but not defined"
