"""The ARM stand-in's Azure RBAC beyond test grants: rights from role assignments (built-in and custom
roles) and ABAC conditions on role assignment writes (``@Request``) and deletes (``@Resource``),
through the app's real AuthorizationManagementClient over HTTPS (devtools/standins/arm/authorization.py,
conditions.py, and the docs they cite)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import DefaultAzureCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

from devtools.standins.arm.conditions import ConditionError, Request, fulfilled, parse, role_assignment_attributes
from devtools.standins.arm.standin import CREDENTIAL_ENV_CONFLICTS, ArmStandIn
from shared.cluster import roles

RG = "rg-aks"
OTHER = "44444444-4444-4444-4444-444444444444"
ATTR = "@Request[Microsoft.Authorization/roleAssignments:{}]"
WRITE = "Microsoft.Authorization/roleAssignments/write"
DELETE = "Microsoft.Authorization/roleAssignments/delete"


def _condition(app: str) -> str:
    """The shape of infra's condition: Network Contributor to service principals; RBAC Writer to the
    app only; deletes of the app's own AKS Contributor only."""
    return (
        f"((!(ActionMatches{{'{WRITE}'}})) OR ({ATTR.format('PrincipalType')} ForAnyOfAnyValues:StringEqualsIgnoreCase "
        f"{{'ServicePrincipal'}} AND (({ATTR.format('RoleDefinitionId')} ForAnyOfAnyValues:GuidEquals "
        f"{{{roles.NETWORK_CONTRIBUTOR}}}) OR ({ATTR.format('RoleDefinitionId')} ForAnyOfAnyValues:GuidEquals "
        f"{{{roles.AKS_RBAC_WRITER}}} AND {ATTR.format('PrincipalId')} ForAnyOfAnyValues:GuidEquals {{{app}}})))) AND "
        f"((!(ActionMatches{{'{DELETE}'}})) OR (@Resource[Microsoft.Authorization/roleAssignments:PrincipalId] "
        f"ForAnyOfAnyValues:GuidEquals {{{app}}} AND @Resource[Microsoft.Authorization/roleAssignments:"
        f"RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{roles.AKS_CONTRIBUTOR}}}))"
    )


@pytest.fixture
def arm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ArmStandIn]:
    stand_in = ArmStandIn(cluster_resource_group=RG, app_rights="assigned").start()
    for name in CREDENTIAL_ENV_CONFLICTS:
        monkeypatch.delenv(name, raising=False)
    for name, value in stand_in.credential_env().items():
        monkeypatch.setenv(name, value)
    stand_in.create_resource_group(RG, "westus")
    yield stand_in
    stand_in.stop()


def _rg(arm: ArmStandIn) -> str:
    return f"/subscriptions/{arm.subscription_id}/resourceGroups/{RG}"


def _auth(arm: ArmStandIn) -> AuthorizationManagementClient:
    return AuthorizationManagementClient(
        DefaultAzureCredential(),
        arm.subscription_id,
        base_url=arm.url,
        credential_scopes=["https://management.azure.com/.default"],
    )


def _create(arm: ArmStandIn, role: str, principal: str, principal_type: str = "ServicePrincipal") -> None:
    _auth(arm).role_assignments.create(
        _rg(arm),
        str(uuid.uuid4()),
        RoleAssignmentCreateParameters(
            role_definition_id=roles.role_definition_id(arm.subscription_id, role),
            principal_id=principal,
            principal_type=principal_type,
        ),
    )


def test_without_an_assignment_the_app_may_do_nothing(arm: ArmStandIn) -> None:
    with pytest.raises(HttpResponseError) as denied:
        _create(arm, roles.NETWORK_CONTRIBUTOR, OTHER)
    assert denied.value.status_code == 403
    assert "does not have authorization to perform action" in str(denied.value)


def test_a_condition_is_enforced_on_writes_with_the_request_attributes(arm: ArmStandIn) -> None:
    arm.assign_role(
        arm.app_principal_id, _rg(arm), roles.RBAC_ADMINISTRATOR, condition=_condition(arm.app_principal_id)
    )
    _create(arm, roles.NETWORK_CONTRIBUTOR, OTHER)  # allowed: Network Contributor to a service principal
    _create(arm, roles.AKS_RBAC_WRITER, arm.app_principal_id)  # allowed: RBAC Writer to itself
    for role, principal, kind in (
        (roles.AKS_RBAC_WRITER, OTHER, "ServicePrincipal"),  # RBAC Writer to someone else
        (roles.RBAC_ADMINISTRATOR, arm.app_principal_id, "ServicePrincipal"),  # not in the list
        (roles.NETWORK_CONTRIBUTOR, str(uuid.uuid4()), "User"),  # not a service principal
    ):
        with pytest.raises(HttpResponseError) as refused:
            _create(arm, role, principal, kind)
        assert refused.value.status_code == 403
        assert "does not have authorization or an ABAC condition not fulfilled to perform action" in str(refused.value)


def test_a_condition_is_enforced_on_deletes_with_the_stored_assignments_attributes(arm: ArmStandIn) -> None:
    arm.assign_role(
        arm.app_principal_id, _rg(arm), roles.RBAC_ADMINISTRATOR, condition=_condition(arm.app_principal_id)
    )
    own = arm.assign_role(arm.app_principal_id, _rg(arm), roles.AKS_CONTRIBUTOR)
    theirs = arm.assign_role(OTHER, _rg(arm), roles.AKS_CONTRIBUTOR)
    with pytest.raises(HttpResponseError) as refused:
        _auth(arm).role_assignments.delete_by_id(theirs)
    assert refused.value.status_code == 403
    assert _auth(arm).role_assignments.delete_by_id(own) is not None
    assert {a["id"] for a in arm.role_assignments()} >= {theirs}
    assert own not in {a["id"] for a in arm.role_assignments()}


def test_custom_roles_grant_their_actions_and_nothing_else(arm: ArmStandIn) -> None:
    guid = str(uuid.uuid4())
    arm.define_role(
        guid,
        {
            "roleName": "reads role assignments",
            "permissions": [{"actions": ["Microsoft.Authorization/roleAssignments/read"], "notActions": []}],
            "assignableScopes": [_rg(arm)],
        },
    )
    arm.assign_role(arm.app_principal_id, _rg(arm), guid)
    assert list(_auth(arm).role_assignments.list_for_scope(_rg(arm)))  # its own assignment, at least
    assert _auth(arm).role_definitions.get(_rg(arm), guid).role_name == "reads role assignments"
    with pytest.raises(HttpResponseError) as denied:
        _create(arm, roles.NETWORK_CONTRIBUTOR, OTHER)
    assert denied.value.status_code == 403


def test_condition_grammar_follows_the_format_page() -> None:
    request = Request(WRITE, role_assignment_attributes("Request", {"roleDefinitionId": "/x/" + roles.AKS_RBAC_WRITER}))
    rid = ATTR.format("RoleDefinitionId")
    # GuidEquals ignores case; ForAnyOfAnyValues needs one match; a missing attribute matches nothing.
    assert fulfilled(f"{rid} ForAnyOfAnyValues:GuidEquals {{{roles.AKS_RBAC_WRITER.upper()}, {OTHER}}}", request)
    assert not fulfilled(f"{ATTR.format('PrincipalId')} ForAnyOfAnyValues:GuidEquals {{{OTHER}}}", request)
    assert fulfilled(f"{ATTR.format('PrincipalId')} ForAnyOfAnyValues:GuidNotEquals {{{OTHER}}}", request) is False
    assert fulfilled(f"!(ActionMatches{{'{DELETE}'}}) && !(ActionMatches{{'Microsoft.Storage/*'}})", request)
    assert fulfilled("ActionMatches{'Microsoft.Authorization/roleAssignments/*'}", request)
    # "a AND b OR c" must be parenthesised; unknown operators are not guessed at: both refuse (fail closed).
    for invalid in (
        f"ActionMatches{{'{WRITE}'}} AND ActionMatches{{'{WRITE}'}} OR ActionMatches{{'{WRITE}'}}",
        f"{rid} ForAnyOfAnyValues:NumericEquals {{1}}",
        "@Principal[x] StringEquals 'a'",
    ):
        with pytest.raises(ConditionError):
            parse(invalid)
        assert not fulfilled(invalid, request)


def test_creating_a_custom_role_needs_role_definitions_write(arm: ArmStandIn) -> None:
    from azure.mgmt.authorization.models import Permission, RoleDefinition

    guid = str(uuid.uuid4())
    definition = RoleDefinition(
        role_name="starts clusters",
        permissions=[Permission(actions=["Microsoft.ContainerService/managedClusters/start/action"])],
        assignable_scopes=[_rg(arm)],
    )
    with pytest.raises(HttpResponseError) as denied:
        _auth(arm).role_definitions.create_or_update(_rg(arm), guid, definition)
    assert denied.value.status_code == 403
    assert "Microsoft.Authorization/roleDefinitions/write" in str(denied.value)
    arm.grant(arm.app_principal_id, _rg(arm), ["Microsoft.Authorization/roleDefinitions/write"])
    created = _auth(arm).role_definitions.create_or_update(_rg(arm), guid, definition)
    assert (created.role_name, created.role_type) == ("starts clusters", "CustomRole")
    arm.assign_role(OTHER, _rg(arm), guid)
    assert arm.is_authorized(OTHER, "Microsoft.ContainerService/managedClusters/start/action", _rg(arm) + "/x")
    assert not arm.is_authorized(OTHER, "Microsoft.ContainerService/managedClusters/stop/action", _rg(arm) + "/x")
