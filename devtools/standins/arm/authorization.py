"""Azure RBAC as the ARM stand-in enforces it: grants and denies per principal and scope, the rights
role assignments give (with their ABAC conditions), the ``AuthorizationFailed`` 403, and
``Microsoft.Authorization`` role assignments and role definitions (built-in and custom).

A principal may do an action at a scope when a test's :meth:`Authorization.grant` covers it, or when
one of its role assignments does: the assignment's scope contains the request's, the role
definition's ``actions`` match the action and its ``notActions`` do not ("Understand Azure role
definitions", learn.microsoft.com/azure/role-based-access-control/role-definitions: wildcards,
NotActions subtract), and the assignment's condition, if any, is fulfilled for the request
(``conditions.py``). Role assignments are additive: any one that allows is enough
(learn.microsoft.com/azure/role-based-access-control/overview, "Multiple role assignments")."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from devtools.standins.arm import conditions
from devtools.standins.arm.catalog import (
    BUILTIN_ROLES,
    ArmError,
    is_guid,
    role_definition_body,
)
from devtools.standins.arm.common import (
    _S,
    _Ctx,
    _key,
    _norm_path,
    _pattern_regex,
    _Result,
    _scope_under,
    _utcnow_iso,
)
from devtools.standins.arm.identity import (
    Principal,
)


@dataclass(frozen=True)
class _Rule:
    principal_id: str
    scope_prefix: str
    pattern: str
    regex: re.Pattern[str]


_NAMESPACE_SCOPE = re.compile(
    r"(.*/providers/microsoft\.containerservice/managedclusters/[^/]+)/(?:managed)?namespaces/[^/]+"
)


class Authorization:
    """Who may do what where (``grant``/``revoke``), and the roleAssignments/roleDefinitions routes."""

    def grant(self, principal_id: str, scope_prefix: str, actions: Iterable[str]) -> None:
        """Allow ``actions`` (ARM operation patterns, ``*`` wildcards) at and below ``scope_prefix``."""
        with self._lock:
            for a in actions:
                self._grants.append(_Rule(principal_id.lower(), _norm_path(scope_prefix), a, _pattern_regex(a)))

    def revoke(self, principal_id: str, action_pattern: str, scope_prefix: str = "/") -> None:
        """Deny matching actions (a NotAction that overrides any grant), and drop identical grants."""
        with self._lock:
            pid = principal_id.lower()
            self._grants = [
                r for r in self._grants if not (r.principal_id == pid and r.pattern.lower() == action_pattern.lower())
            ]
            self._denies.append(_Rule(pid, _norm_path(scope_prefix), action_pattern, _pattern_regex(action_pattern)))

    def is_authorized(
        self, principal_id: str, action: str, scope: str, attributes: conditions.Attributes | None = None
    ) -> bool:
        """Whether the principal may do ``action`` at ``scope`` (``attributes``: the request's ABAC attributes)."""
        return self._verdict(principal_id, action, scope, attributes or {}) == "allowed"

    def _verdict(self, principal_id: str, action: str, scope: str, attributes: conditions.Attributes) -> str:
        """``allowed``, ``denied`` (no grant or assignment covers it) or ``condition`` (one would, but
        its condition is not fulfilled)."""
        with self._lock:
            pid = principal_id.lower()
            for r in self._denies:
                if r.principal_id == pid and r.regex.fullmatch(action) and _scope_under(scope, r.scope_prefix):
                    return "denied"
            if any(
                r.principal_id == pid and r.regex.fullmatch(action) and _scope_under(scope, r.scope_prefix)
                for r in self._grants
            ):
                return "allowed"
            verdict = "denied"
            request = conditions.Request(action, attributes)
            for ra in self._role_assignments.values():
                props = ra["properties"]
                if props["principalId"].lower() != pid or not _scope_under(scope, props["scope"]):
                    continue
                if not self._role_allows(props["roleDefinitionId"], action):
                    continue
                if not props.get("condition") or conditions.fulfilled(props["condition"], request):
                    return "allowed"
                verdict = "condition"
            return verdict

    def _role_allows(self, role_definition_id: str, action: str) -> bool:
        guid = role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()
        actions, not_actions = self._permissions(guid)
        return any(_pattern_regex(a).fullmatch(action) for a in actions) and not any(
            _pattern_regex(a).fullmatch(action) for a in not_actions
        )

    def _permissions(self, guid: str) -> tuple[list[str], list[str]]:
        if guid in BUILTIN_ROLES:
            return BUILTIN_ROLES[guid][1], []
        custom = self._custom_roles.get(guid)
        if custom is None:
            return [], []
        permissions = custom["properties"].get("permissions") or []
        actions = [a for p in permissions for a in p.get("actions") or []]
        not_actions = [a for p in permissions for a in p.get("notActions") or []]
        return actions, not_actions

    def define_role(self, guid: str, properties: dict[str, Any]) -> None:
        """Create a custom role as a deployment would (``roleName``, ``permissions``, ``assignableScopes``)."""
        with self._lock:
            self._custom_roles[guid.lower()] = {
                "id": f"/subscriptions/{self.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
                "name": guid.lower(),
                "type": "Microsoft.Authorization/roleDefinitions",
                "properties": {**copy.deepcopy(properties), "type": "CustomRole"},
            }

    def assign_role(self, principal_id: str, scope: str, role: str, *, condition: str | None = None) -> str:
        """Create a role assignment as a deployment would (no caller's rights checked); returns its id.
        The name is derived from (scope, principal, role), like the Bicep's ``guid(...)``."""
        scope = _norm_path(scope)
        name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}|{principal_id.lower()}|{role.lower()}"))
        rid = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
        known = self.tokens.principal(principal_id)
        with self._lock:
            self._role_assignments[_key(rid)] = {
                "id": rid,
                "name": name,
                "type": "Microsoft.Authorization/roleAssignments",
                "properties": {
                    "roleDefinitionId": (
                        f"/subscriptions/{self.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"
                    ),
                    "principalId": principal_id,
                    "principalType": known.principal_type if known else "ServicePrincipal",
                    "scope": scope,
                    "condition": condition,
                    "conditionVersion": "2.0" if condition else None,
                },
            }
        return rid

    def role_assignments(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._role_assignments.values()))

    def _condition_attributes(self, action: str, path: str, body: Any) -> dict[str, list[str]]:
        """The ABAC attributes ARM exposes for this action (conditions.py [ATTRS]): role assignment
        writes carry the request body's, deletes the stored assignment's; other actions none."""
        low = action.lower()
        if low == "microsoft.authorization/roleassignments/write":
            props = (body.get("properties") if isinstance(body, dict) else None) or {}
            return conditions.role_assignment_attributes("Request", props)
        if low == "microsoft.authorization/roleassignments/delete":
            with self._lock:
                stored = self._role_assignments.get(_key(path))
            return conditions.role_assignment_attributes("Resource", stored["properties"]) if stored else {}
        return {}

    def _authorize(self, principal: Principal, action: str, scope: str, body: Any = None) -> None:
        verdict = self._verdict(principal.object_id, action, scope, self._condition_attributes(action, scope, body))
        if verdict != "allowed":
            # The wording ARM uses when a role assignment's condition is what refused ("does not have
            # authorization or an ABAC condition not fulfilled", quoted in the troubleshooting page
            # learn.microsoft.com/azure/role-based-access-control/troubleshooting).
            what = "authorization or an ABAC condition not fulfilled" if verdict == "condition" else "authorization"
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client '{principal.client_id}' with object id '{principal.object_id}' does not have "
                f"{what} to perform action '{action}' over scope '{scope}' or the scope is invalid. "
                "If access was recently granted, please refresh your credentials.",
            )

    # ------------------------------------------------------------------ authorization
    def _check_scope_exists(self, scope: str) -> None:
        k = _key(scope)
        # Azure RBAC for Kubernetes grants per namespace at {clusterId}/namespaces/{ns} (or, for
        # AKS managed namespaces, {clusterId}/managedNamespaces/{ns}): ARM accepts these for an
        # existing cluster, whether the namespace exists yet or not.
        namespace_scope = _NAMESPACE_SCOPE.fullmatch(k)
        if namespace_scope is not None:
            k = namespace_scope.group(1)
        m = re.fullmatch(_S + r"(?:/resourcegroups/(?P<rg>[^/]+))?(?P<rest>/providers/.*)?$", k)
        if m is None:
            return
        if m["sub"] != self.subscription_id.lower():
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{m['sub']}' could not be found.")
        if m["rg"] and m["rg"] not in self._rgs:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{m['rg']}' could not be found.")
        rest = (m["rest"] or "").lower()
        modelled = (
            "/providers/microsoft.network/virtualnetworks/",
            "/providers/microsoft.containerservice/managedclusters/",
        )
        if m["rg"] and any(rest.startswith(p) for p in modelled) and self._find(k) is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{rest.removeprefix('/providers/')}' under resource group "
                f"'{m['rg']}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )

    def _ra_id(self, ctx: _Ctx) -> str:
        return f"{_norm_path(ctx.g['scope'])}/providers/Microsoft.Authorization/roleAssignments/{ctx.g['ra']}"

    def _ra_put(self, ctx: _Ctx) -> _Result:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        props = body.get("properties") or {}
        with self._lock:
            name = ctx.g["ra"]
            scope = _norm_path(ctx.g["scope"])
            if not is_guid(name):
                raise ArmError(
                    400,
                    "InvalidRoleAssignmentId",
                    f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
                )
            self._check_scope_exists(scope)
            rd_id = props.get("roleDefinitionId") or ""
            m = re.fullmatch(r"(?i).*/providers/Microsoft\.Authorization/roleDefinitions/([^/]+)", rd_id)
            if m is None:
                raise ArmError(400, "InvalidRoleDefinitionId", f"The role definition ID '{rd_id}' is not valid.")
            guid = m.group(1).lower()
            if guid not in BUILTIN_ROLES and guid not in self._custom_roles:
                raise ArmError(
                    400, "RoleDefinitionDoesNotExist", f"The specified role definition with ID '{guid}' does not exist."
                )
            principal_id = props.get("principalId") or ""
            if not is_guid(principal_id):
                raise ArmError(
                    400,
                    "InvalidPrincipalId",
                    f"A valid principal ID must be provided for role assignment. Got '{principal_id}'.",
                )
            principal_type = props.get("principalType")
            known = self.tokens.principal(principal_id)
            if known is None and not principal_type:
                raise ArmError(
                    400,
                    "PrincipalNotFound",
                    f"Principal {principal_id.replace('-', '')} does not exist in the directory {self.tenant_id}. Check "
                    "that you have the correct principal ID. If you are creating this principal and then immediately "
                    "assigning a role, this error might be related to a replication delay. In this case, set the role "
                    "assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See "
                    "https://aka.ms/docs-principaltype",
                )
            if known is not None and principal_type and principal_type.lower() != known.principal_type.lower():
                raise ArmError(
                    400,
                    "UnmatchedPrincipalType",
                    f"The PrincipalId '{principal_id.replace('-', '')}' has type '{known.principal_type}' , which is "
                    f"different from specified PrincipalType '{principal_type}'.",
                )
            rid = self._ra_id(ctx)
            key = _key(rid)
            existing = self._role_assignments.get(key)
            full_rd = f"/subscriptions/{self.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
            if existing is not None:
                e = existing["properties"]
                if e["principalId"].lower() != principal_id.lower() or _key(e["roleDefinitionId"]) != _key(full_rd):
                    raise ArmError(
                        400,
                        "RoleAssignmentUpdateNotPermitted",
                        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                    )
                return 201, {}, copy.deepcopy(existing)
            for other in self._role_assignments.values():
                o = other["properties"]
                if (
                    _key(o["scope"]) == _key(scope)
                    and o["principalId"].lower() == principal_id.lower()
                    and o["roleDefinitionId"].lower().rsplit("/", 1)[-1] == guid
                ):
                    raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
            now = _utcnow_iso()
            ra = {
                "id": rid,
                "name": name,
                "type": "Microsoft.Authorization/roleAssignments",
                "properties": {
                    "roleDefinitionId": full_rd,
                    "principalId": principal_id,
                    "principalType": principal_type or (known.principal_type if known else "User"),
                    "scope": scope,
                    "condition": props.get("condition"),
                    "conditionVersion": props.get("conditionVersion"),
                    "description": props.get("description"),
                    "createdOn": now,
                    "updatedOn": now,
                    "createdBy": ctx.principal.object_id,
                    "updatedBy": ctx.principal.object_id,
                    "delegatedManagedIdentityResourceId": None,
                },
            }
            self._role_assignments[key] = ra
            return 201, {}, copy.deepcopy(ra)

    def _ra_get(self, ctx: _Ctx) -> _Result:
        with self._lock:
            ra = self._role_assignments.get(_key(self._ra_id(ctx)))
            if ra is None:
                raise ArmError(404, "RoleAssignmentNotFound", f"The role assignment '{ctx.g['ra']}' is not found.")
            return 200, {}, copy.deepcopy(ra)

    def _ra_delete(self, ctx: _Ctx) -> _Result:
        with self._lock:
            ra = self._role_assignments.pop(_key(self._ra_id(ctx)), None)
            return (200, {}, copy.deepcopy(ra)) if ra is not None else (204, {}, None)

    def _ra_list(self, ctx: _Ctx) -> _Result:
        scope = _norm_path(ctx.g["scope"])
        flt = ctx.params.get("$filter", "")
        at_scope = "atscope()" in flt.lower()
        m = re.search(r"(?i)(principalId\s+eq|assignedTo\()\s*'([^']+)'", flt)
        pid = m.group(2).lower() if m else None
        with self._lock:
            out = []
            for ra in self._role_assignments.values():
                rs = ra["properties"]["scope"]
                above_or_at = _scope_under(scope, rs)
                below = _scope_under(rs, scope)
                if at_scope and not above_or_at:
                    continue
                if not at_scope and not (above_or_at or below):
                    continue
                if pid and ra["properties"]["principalId"].lower() != pid:
                    continue
                out.append(copy.deepcopy(ra))
            return 200, {}, {"value": out}

    def _role_definition(self, guid: str) -> dict[str, Any] | None:
        if guid in BUILTIN_ROLES:
            return role_definition_body(self.subscription_id, guid)
        custom = self._custom_roles.get(guid)
        return copy.deepcopy(custom) if custom is not None else None

    def _rd_get(self, ctx: _Ctx) -> _Result:
        found = self._role_definition(ctx.g["rd"].lower())
        if found is None:
            raise ArmError(
                404,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{ctx.g['rd']}' does not exist.",
            )
        return 200, {}, found

    def _rd_put(self, ctx: _Ctx) -> _Result:
        """Create or update a custom role (azure-rest-api-specs specification/authorization/resource-manager/
        Microsoft.Authorization/stable/2022-04-01/authorization-RoleDefinitionsCalls.json,
        RoleDefinitions_CreateOrUpdate): the name is a GUID, built-in roles cannot be changed, and the
        role may be assigned only at or below its ``assignableScopes`` ("Azure custom roles",
        learn.microsoft.com/azure/role-based-access-control/custom-roles)."""
        guid = ctx.g["rd"].lower()
        props = (ctx.body.get("properties") if isinstance(ctx.body, dict) else None) or {}
        if not is_guid(guid):
            raise ArmError(400, "InvalidRoleDefinitionId", f"The role definition ID '{guid}' is not valid.")
        if guid in BUILTIN_ROLES:
            raise ArmError(403, "BuiltInRoleCannotBeModified", "Built-in role definitions cannot be modified.")
        scopes = props.get("assignableScopes") or []
        if not props.get("roleName") or not scopes or not props.get("permissions"):
            raise ArmError(
                400,
                "InvalidRoleDefinition",
                "roleName, permissions and assignableScopes are required for a custom role.",
            )
        with self._lock:
            for other_guid, other in self._custom_roles.items():
                if other_guid != guid and other["properties"]["roleName"].lower() == str(props["roleName"]).lower():
                    # custom-roles: "role names must be unique" within the directory
                    raise ArmError(409, "RoleDefinitionWithSameNameExists", "A role definition with this name exists.")
            body = {
                "id": f"/subscriptions/{self.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
                "name": guid,
                "type": "Microsoft.Authorization/roleDefinitions",
                "properties": {
                    "roleName": props["roleName"],
                    "type": "CustomRole",
                    "description": props.get("description"),
                    "assignableScopes": [_norm_path(sc) for sc in scopes],
                    "permissions": copy.deepcopy(props["permissions"]),
                    "createdBy": ctx.principal.object_id,
                },
            }
            self._custom_roles[guid] = body
            return 201, {}, copy.deepcopy(body)

    def _rd_list(self, ctx: _Ctx) -> _Result:
        flt = ctx.params.get("$filter", "")
        m = re.search(r"(?i)roleName\s+eq\s+'([^']+)'", flt)
        with self._lock:
            everything = [role_definition_body(self.subscription_id, g) for g in BUILTIN_ROLES]
            everything += [copy.deepcopy(c) for c in self._custom_roles.values()]
        out = [d for d in everything if m is None or d["properties"]["roleName"].lower() == m.group(1).lower()]
        return 200, {}, {"value": out}
