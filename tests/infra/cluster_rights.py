"""What ``infra/app/cluster-rbac.bicep`` gives the app's identity on the cluster resource group, read
from the Bicep itself (pycep): each role assignment (role GUID, or the custom steady-state role, and
its ABAC condition with the principal id filled in) and the custom role's permissions.

The infra tests check these values; the integration tests deploy them into the ARM stand-in (as
`azd provision` would) so the app runs with exactly these rights.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from devtools.standins.arm.standin import ArmStandIn
from tests.infra.bicep_model import INFRA, ROLE_ASSIGNMENT, Template, Unresolved, unescape

CLUSTER_RBAC = INFRA / "app" / "cluster-rbac.bicep"
ROLE_DEFINITION = "Microsoft.Authorization/roleDefinitions"
STEADY_STATE = "custom:steady-state"
"""``Assignment.role`` of the custom role the template defines (its GUID is only known to Azure)."""


@dataclass(frozen=True)
class Assignment:
    symbol: str
    role: str  # a built-in role's GUID (lower case), or STEADY_STATE
    condition: str | None
    condition_version: str | None


@dataclass(frozen=True)
class ClusterRights:
    assignments: tuple[Assignment, ...]
    steady_state: dict[str, Any]  # the custom role's properties, as written (assignableScopes unresolved)

    def by_role(self, role: str) -> Assignment:
        [found] = [a for a in self.assignments if a.role == role]
        return found

    @property
    def steady_state_actions(self) -> list[str]:
        return [a for p in self.steady_state["permissions"] for a in p.get("actions") or []]

    @property
    def steady_state_not_actions(self) -> list[str]:
        return [a for p in self.steady_state["permissions"] for a in p.get("notActions") or []]


def cluster_rights(principal_id: str) -> ClusterRights:
    """The template's rights for ``principal_id`` (the ``principalId`` parameter)."""
    template = Template(CLUSTER_RBAC)
    template.params["principalId"] = {**template.params["principalId"], "default": principal_id}
    [(custom_symbol, custom)] = [(n, r) for n, r in template.resources.items() if r["type"] == ROLE_DEFINITION]
    custom_name = custom["config"]["name"]
    assignments = []
    for symbol, resource in template.resources.items():
        if resource["type"] != ROLE_ASSIGNMENT:
            continue
        props = resource["config"]["properties"]
        function = props["roleDefinitionId"]["function"]
        assert function["type"] == "subscription_resource_id", f"{symbol}: use subscriptionResourceId(...)"
        variable = function["parameters"]["resource_name_1"]
        if variable == custom_name:
            # the role must exist before it is assigned: no symbolic reference links them, so dependsOn does
            assert custom_symbol in (resource["config"].get("dependsOn") or []), f"{symbol}: dependsOn {custom_symbol}"
            role = STEADY_STATE
        else:
            role = template.resolve(variable)
            assert isinstance(role, str), f"{symbol}: role {variable!r} is not a literal"
        condition = template.resolve(props["condition"]) if "condition" in props else None
        assert not isinstance(condition, Unresolved), f"{symbol}: the condition must be a literal to be reviewed"
        assignments.append(
            Assignment(
                symbol,
                role.lower(),
                unescape(condition) if isinstance(condition, str) else None,
                props.get("conditionVersion"),
            )
        )
    return ClusterRights(tuple(assignments), custom["config"]["properties"])


def deploy(arm: ArmStandIn, principal_id: str, resource_group_id: str) -> dict[str, str]:
    """What `azd provision` does with this template, into the ARM stand-in: the custom role, then every
    assignment at the resource group (conditions included). Returns role (GUID or STEADY_STATE) ->
    assignment id. Deploying again re-creates deleted assignments under the same names, as ARM does."""
    steady_guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{resource_group_id.lower()}|vnode-batch-steady-state"))
    rights = cluster_rights(principal_id)
    properties = {**rights.steady_state, "assignableScopes": [resource_group_id]}
    arm.define_role(steady_guid, properties)
    return {
        a.role: arm.assign_role(
            principal_id, resource_group_id, steady_guid if a.role == STEADY_STATE else a.role, condition=a.condition
        )
        for a in rights.assignments
    }
