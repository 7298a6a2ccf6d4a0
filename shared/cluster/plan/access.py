"""Steps 4, 6, 7: the role assignments bootstrap makes; step 10: the bootstrap-only rights it gives up
when the cluster is ready; and ARM errors (403s above all) → decisions. Pure."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.base.errors import ArmFault
from shared.cluster import roles
from shared.cluster.plan.steps import ROLE_NAMES, ROLE_NAMESPACE, Decision, Do, Step, Targets

_WHO = {
    Step.CLUSTER_SUBNET_ROLE: "the cluster identity",
    Step.VNODE_SUBNET_ROLE: "the virtual-node addon identity",
    Step.APP_ROLE: "the app identity",
}


@dataclass(frozen=True)
class RoleGrant:
    """A role assignment the bootstrap makes. The name is a function of (scope, principal, role),
    so every instance computes the same one and concurrent creates meet on a single resource."""

    step: Step
    scope: str
    principal_id: str
    role: str  # role definition GUID
    subscription_id: str

    @property
    def name(self) -> str:
        key = f"{self.scope.strip('/').lower()}|{self.principal_id.lower()}|{self.role.lower()}"
        return str(uuid.uuid5(ROLE_NAMESPACE, key))

    @property
    def role_definition_id(self) -> str:
        return roles.role_definition_id(self.subscription_id, self.role)

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role, self.role)

    @property
    def body(self) -> dict[str, Any]:
        return {
            "properties": {
                "roleDefinitionId": self.role_definition_id,
                "principalId": self.principal_id,
                # The SDK's default ('User') fails for a managed identity created seconds ago.
                "principalType": "ServicePrincipal",
            }
        }

    def describe(self) -> str:
        who = _WHO.get(self.step, "principal")
        return f"{self.role_name} for {who} {self.principal_id} on {self.scope}"


def cluster_subnet_grant(targets: Targets, principal: str) -> RoleGrant:
    """The cluster identity manages the node NICs and load balancer in the cluster subnet."""
    return RoleGrant(
        Step.CLUSTER_SUBNET_ROLE,
        targets.cluster_subnet_id,
        principal,
        roles.NETWORK_CONTRIBUTOR,
        targets.subscription_id,
    )


def vnode_subnet_grant(targets: Targets, principal: str) -> RoleGrant:
    """The addon identity joins container groups to the virtual-node subnet (least privilege: the
    subnet, not the vnet that az CLI grants)."""
    return RoleGrant(
        Step.VNODE_SUBNET_ROLE, targets.vnode_subnet_id, principal, roles.NETWORK_CONTRIBUTOR, targets.subscription_id
    )


def app_namespace_grant(targets: Targets) -> RoleGrant:
    """The app's own identity may create Jobs and read pods and logs in its namespace, nowhere else."""
    return RoleGrant(
        Step.APP_ROLE, targets.namespace_scope, targets.app_principal_id, roles.AKS_RBAC_WRITER, targets.subscription_id
    )


def decide_role(grant: RoleGrant, observed: Mapping[str, Any] | None) -> Decision:
    if observed is None:
        return Decision(grant.step, Do.CREATE, f"grant {grant.describe()}", grant.name, grant.body)
    props = observed.get("properties") or {}
    if str(props.get("principalId", "")).lower() != grant.principal_id.lower() or not str(
        props.get("roleDefinitionId", "")
    ).lower().endswith(grant.role.lower()):
        return Decision(
            grant.step,
            Do.BLOCKED,
            f"role assignment {grant.name} on {grant.scope} exists for another principal or role "
            f"({props.get('principalId')}, {props.get('roleDefinitionId')}): delete it so the bootstrap can recreate it",
            grant.name,
        )
    return Decision(grant.step, Do.NOTHING, f"{grant.describe()} granted", grant.name)


def decide_rights(observed: Sequence[Mapping[str, Any]], targets: Targets) -> Decision:
    """Step 10, once everything else is done: which of the app's own assignments of a bootstrap-only
    role (``roles.BOOTSTRAP_ONLY_ROLES``) at the cluster resource group to delete, in that tuple's
    order (RBAC Administrator last: it is what allows the deletes). ``observed``: the role
    assignments ARM lists for the app at that group (REST JSON). Assignments elsewhere (a
    subscription-scope grant an operator made, the namespace-scoped RBAC Writer) are never touched.
    """
    held: dict[str, str] = {}
    for assignment in observed:
        props = assignment.get("properties") or {}
        role = str(props.get("roleDefinitionId", "")).rstrip("/").rsplit("/", 1)[-1].lower()
        if (
            role in roles.BOOTSTRAP_ONLY_ROLES
            and str(props.get("principalId", "")).lower() == targets.app_principal_id.lower()
            and same_prefix(str(props.get("scope", "")), targets.resource_group_id)
            and same_prefix(targets.resource_group_id, str(props.get("scope", "")))
        ):
            held.setdefault(role, str(assignment.get("id", "")))
    if not held:
        return Decision(
            Step.BOOTSTRAP_RIGHTS,
            Do.NOTHING,
            "the app holds only its steady-state rights (bootstrap-only roles given up; `azd provision` grants them "
            "again)",
        )
    ordered = [held[role] for role in roles.BOOTSTRAP_ONLY_ROLES if role in held]
    names = ", ".join(ROLE_NAMES.get(role, role) for role in roles.BOOTSTRAP_ONLY_ROLES if role in held)
    return Decision(
        Step.BOOTSTRAP_RIGHTS,
        Do.GIVE_UP,
        f"give up the bootstrap-only roles the cluster no longer needs: {names} on {targets.resource_group_id}",
        targets.resource_group_id,
        {"delete": ordered},
    )


BOOTSTRAP_RIGHTS_HINT = (
    "the app gives up its bootstrap-only roles (Network Contributor, Azure Kubernetes Service Contributor Role, Role "
    "Based Access Control Administrator with its condition) once the cluster is ready; to build or change the cluster "
    "again, run `azd provision` (it assigns them again, from infra/app/cluster-rbac.bicep)"
)
"""Appended to a 403 on an action only those roles allow: a cluster deleted (or changed) after the
bootstrap gave them up is blocked, with this as what to do, instead of retried forever."""

_BOOTSTRAP_ACTIONS = (
    "microsoft.network/virtualnetworks/write",
    "microsoft.network/virtualnetworks/subnets/",
    "microsoft.containerservice/managedclusters/write",
    "microsoft.containerservice/managedclusters/managednamespaces/write",
    "microsoft.authorization/roleassignments/write",
)


_ACTION = re.compile(r"perform action(?:\(s\))? '([^']+)' (?:over|on the linked) scope(?:\(s\))? '([^']+)'")


_OBJECT_ID = re.compile(r"object id '([0-9A-Fa-f-]{36})'")


_ROLE_FOR_ACTION: tuple[tuple[str, str], ...] = (
    (
        "microsoft.authorization/roleassignments/",
        "Role Based Access Control Administrator (with the condition of infra/app/cluster-rbac.bicep: Network "
        "Contributor to service principals and AKS RBAC Writer to the app itself only)",
    ),
    ("microsoft.network/", "Network Contributor"),
    (
        "microsoft.containerservice/managedclusters/managednamespaces/",
        "Azure Kubernetes Service Contributor Role (or, for namespaces only, Azure Kubernetes Service Namespace "
        "Contributor)",
    ),
    (
        "microsoft.containerservice/managedclusters/listclusterusercredential",
        "the vnode-batch steady-state role (infra/app/cluster-rbac.bicep; or Azure Kubernetes Service Cluster User "
        "Role)",
    ),
    ("microsoft.containerservice/managedclusters/start/", "the vnode-batch steady-state role (infra/)"),
    ("microsoft.containerservice/managedclusters/stop/", "the vnode-batch steady-state role (infra/)"),
    ("microsoft.containerservice/", "Azure Kubernetes Service Contributor Role"),
    ("microsoft.resources/", "Reader (any role that reads the resource group)"),
)


def classify(step: Step, fault: ArmFault, targets: Targets) -> Decision:
    """What an ARM failure means for the bootstrap: wait (in progress, throttled, ARM trouble)
    or blocked (a permission, a quota, a bad setting), with a reason a person can act on."""
    code = fault.code or ""
    lowered = f"{code} {fault.message}".lower()
    status = fault.status
    if status == 429:
        after = f", retry after {fault.retry_after:g} s" if fault.retry_after else ""
        return Decision(step, Do.WAIT, f"ARM is throttling the app ({code or 429}{after})")
    if status == 409 and ("in progress" in lowered or "anotheroperationinprogress" in lowered):
        return Decision(step, Do.WAIT, f"another operation is in progress ({code}): {fault.message[:200]}")
    if status == 403 or code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
        return Decision(step, Do.BLOCKED, _permission_reason(fault, targets))
    if code in ("ResourceGroupNotFound", "SubscriptionNotFound"):
        return Decision(
            step,
            Do.BLOCKED,
            f"{code}: {fault.message[:200]} — the cluster's resource group is created by infra/ (`azd up`); create it "
            "or correct VNB_SUBSCRIPTION_ID / VNB_RESOURCE_GROUP",
        )
    if code == "PrincipalNotFound":
        return Decision(
            step,
            Do.WAIT,
            f"Entra ID does not know the identity yet ({fault.message[:160]}): new managed identities take a while to "
            "replicate",
        )
    if code == "MissingSubscriptionRegistration" or "not registered to use namespace" in lowered:
        return Decision(
            step,
            Do.WAIT,
            f"a resource provider is not registered for the subscription ({fault.message[:200]}): if it does not "
            "register by itself, run `az provider register --namespace <namespace>` once",
        )
    if "quota" in lowered:
        return Decision(
            step,
            Do.BLOCKED,
            f"a quota is exhausted ({code}: {fault.message[:300]}): request more quota for the region, or lower "
            "VNB_NODE_COUNT / pick another VNB_NODE_VM_SIZE or VNB_LOCATION",
        )
    if code in ("SubnetIsDelegated", "SubnetDelegationConflict", "InUseSubnetCannotBeUpdated", "SubnetNotFound"):
        return Decision(
            step,
            Do.BLOCKED,
            f"{code}: {fault.message[:300]} — fix the subnet or choose another (VNB_CLUSTER_SUBNET_NAME, "
            "VNB_VNODE_SUBNET_NAME and their CIDRs)",
        )
    if code in ("CredentialUnavailable",):
        return Decision(
            step,
            Do.BLOCKED,
            f"no Azure credential: {fault.message[:300]} — in Azure give the Function App a managed identity (and set "
            "AZURE_CLIENT_ID for a user-assigned one); locally, `az login`",
        )
    if status is None or status >= 500 or status in (408, 401):
        return Decision(step, Do.WAIT, f"ARM call failed ({status or 'no answer'} {code}): {fault.message[:200]}")
    return Decision(
        step,
        Do.BLOCKED,
        f"ARM refused the request ({status} {code}): {fault.message[:300]} — check the VNB_ settings of this step",
    )


def _permission_reason(fault: ArmFault, targets: Targets) -> str:
    match = _ACTION.search(fault.message)
    action, scope = (match.group(1), match.group(2)) if match else ("(unknown)", targets.resource_group_id)
    object_id = _OBJECT_ID.search(fault.message)
    principal = object_id.group(1) if object_id else targets.app_principal_id
    low = action.lower()
    if low.endswith("/register/action"):
        namespace = action.split("/", 1)[0]
        return (
            f"the app identity {principal} may not register resource provider {namespace} (it has no subscription-"
            f"scope rights, by design): run `az provider register --namespace {namespace}` once, or grant it "
            f"'{action}' on /subscriptions/{targets.subscription_id}: the failed action was {action} over {scope}"
        )
    role = next((r for prefix, r in _ROLE_FOR_ACTION if low.startswith(prefix)), "a role that allows it")
    grant_scope = targets.resource_group_id if same_prefix(scope, targets.resource_group_id) else scope
    reason = (
        f"grant {role} on {grant_scope} to the app identity {principal}: the failed action was {action} over {scope}"
    )
    if low.startswith(_BOOTSTRAP_ACTIONS):
        reason += f" — {BOOTSTRAP_RIGHTS_HINT}"
    return reason


def same_prefix(scope: str, prefix: str) -> bool:
    s, p = scope.strip("/").lower(), prefix.strip("/").lower()
    return s == p or s.startswith(p + "/")
