"""AKS managed namespaces (``managedClusters/{name}/managedNamespaces``): an LRO on an existing
cluster, with its name and policy validation and the create/delete hooks the tests wire to Kubernetes."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from typing import Any

from devtools.standins.arm.catalog import (
    ArmError,
)
from devtools.standins.arm.common import (
    _Ctx,
    _key,
    _Result,
)
from devtools.standins.arm.operations import _Op

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SYSTEM_NAMESPACES = frozenset(
    {
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "app-routing-system",
        "istio-system",
        "gatekeeper-system",
        "calico-system",
        "tigera-operator",
    }
)
_POLICY_RULES = ("DenyAll", "AllowAll", "AllowSameNamespace")


class ManagedNamespaces:
    """managedNamespaces PUT/GET/DELETE and list."""

    def _namespace_key(self, g: dict[str, str]) -> str:
        return _key(f"{self._cluster_id(g)}/managedNamespaces/{g['mns']}")

    def _parent_for_write(self, g: dict[str, str]) -> dict[str, Any]:
        """The cluster a managed namespace is written under: it must exist and be Succeeded."""
        c = self._clusters.get(_key(self._cluster_id(g)))
        running = self._in_progress(_key(self._cluster_id(g))) if c is not None else None
        if c is not None and running is not None and running.kind != "create":
            raise self._conflict(running, c["name"])
        state = (c or {}).get("properties", {}).get("provisioningState")
        if c is None or state != "Succeeded":
            raise ArmError(
                404,
                "ParentResourceNotFound",
                f"Can not perform requested operation on nested resource. Parent resource "
                f"'{g['name']}' not found" + (f" (provisioningState {state})." if c is not None else "."),
            )
        return c

    def _namespace_running(self, key: str) -> _Op | None:
        op_id = self._namespace_ops.get(key)
        op = self._ops.get(op_id) if op_id else None
        return op if op is not None and op.status == "InProgress" else None

    def _namespace_list(self, ctx: _Ctx) -> _Result:
        with self._lock:
            prefix = _key(self._cluster(ctx.g)["id"]) + "/managednamespaces/"
            found = [copy.deepcopy(n) for k, n in self._managed_namespaces.items() if k.startswith(prefix)]
            return 200, {}, {"value": found}

    def _namespace_get(self, ctx: _Ctx) -> _Result:
        with self._lock:
            self._cluster(ctx.g)
            ns = self._managed_namespaces.get(self._namespace_key(ctx.g))
            if ns is None:
                raise ArmError(
                    404,
                    "NotFound",
                    f"The managed namespace '{ctx.g['mns']}' of managed cluster '{ctx.g['name']}' was not found.",
                )
            return 200, {}, copy.deepcopy(ns)

    @staticmethod
    def _validate_namespace(name: str, body: dict[str, Any]) -> dict[str, Any]:
        def bad(message: str, code: str = "InvalidParameter") -> ArmError:
            return ArmError(400, code, message)

        if not _DNS_LABEL.fullmatch(name) or len(name) > 63:
            raise bad(f"The managed namespace name '{name}' is not a valid Kubernetes namespace name (RFC 1123 label).")
        if name in _SYSTEM_NAMESPACES:
            raise bad(f"The namespace '{name}' is a system namespace and cannot be a managed namespace.")
        if not body.get("location"):
            raise bad("The location property is required for this definition.", "LocationRequired")
        props = body.get("properties") or {}
        policy = props.get("defaultNetworkPolicy") or {}
        # Enums of the 2025-10-01 spec (managedClusters.json PolicyRule, AdoptionPolicy,
        # DeletePolicy); the same sets azure-cli checks (acs/managednamespace.py).
        for direction in ("ingress", "egress"):
            if policy.get(direction) is not None and policy[direction] not in _POLICY_RULES:
                raise bad(
                    f"The value of parameter defaultNetworkPolicy.{direction} is invalid: '{policy[direction]}' "
                    f"(one of {', '.join(_POLICY_RULES)})."
                )
        for field_name, allowed in (
            ("adoptionPolicy", ("Never", "IfIdentical", "Always")),
            ("deletePolicy", ("Keep", "Delete")),
        ):
            if props.get(field_name) is not None and props[field_name] not in allowed:
                raise bad(f"The value of parameter {field_name} is invalid: '{props[field_name]}'.")
        return props

    def _namespace_put(self, ctx: _Ctx) -> _Result:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        with self._lock:
            c = self._parent_for_write(ctx.g)
            key = self._namespace_key(ctx.g)
            existing = self._managed_namespaces.get(key)
            name = existing["name"] if existing else ctx.g["mns"]
            running = self._namespace_running(key)
            if running is not None:
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Operation is not allowed because there's an in progress {running.kind} managed namespace "
                    f"operation on '{name}'. Please try again later.",
                )
            props = self._validate_namespace(name, body)
            engine = ((c.get("properties") or {}).get("networkProfile") or {}).get("networkPolicy")
            has_engine = bool(engine) and str(engine).lower() != "none"
            if props.get("defaultNetworkPolicy") is not None and not has_engine:
                # learn.microsoft.com azure/aks/managed-namespaces, Prerequisites: "To use the
                # network policy feature, the AKS cluster needs to be configured with a network
                # policy engine." The docs do not show ARM's answer to a policy on a cluster
                # without one (refused, or accepted and never enforced); refusing is the model
                # under which a body that passes here passes either way. Code and wording are ours.
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"Managed namespace '{name}': defaultNetworkPolicy needs a network policy engine on cluster "
                    f"'{c['name']}' (networkProfile.networkPolicy is not set); omit defaultNetworkPolicy.",
                )
            # Without a policy in the body: the CLI's defaults (azure-cli acs/managednamespace.py
            # setNetworkPolicyRule) on a cluster with an engine; none shown without one (not documented).
            policy: dict[str, Any] | None = (
                {"ingress": "AllowSameNamespace", "egress": "AllowAll"}
                | {k: v for k, v in (props.get("defaultNetworkPolicy") or {}).items() if v is not None}
                if has_engine
                else None
            )
            ns: dict[str, Any] = {
                "id": f"{c['id']}/managedNamespaces/{name}",
                "name": name,
                "type": "Microsoft.ContainerService/managedClusters/managedNamespaces",
                "location": body["location"],
                "eTag": str(uuid.uuid4()),
                "properties": {
                    "provisioningState": "Updating" if existing else "Creating",
                    "labels": props.get("labels") or {},
                    "annotations": props.get("annotations") or {},
                    "adoptionPolicy": props.get("adoptionPolicy") or "Never",
                    "deletePolicy": props.get("deletePolicy") or "Keep",
                    "portalFqdn": c["properties"].get("azurePortalFQDN"),
                },
            }
            if policy is not None:
                ns["properties"]["defaultNetworkPolicy"] = policy
            # Optional: NamespaceProperties has no "required" list (azure-rest-api-specs
            # specification/containerservice/resource-manager/Microsoft.ContainerService/aks/
            # stable/2025-10-01/managedClusters.json); only `az aks namespace add` demands the four
            # quota values, client-side (azure-cli acs/managednamespace.py setResourceQuota).
            if props.get("defaultResourceQuota") is not None:
                ns["properties"]["defaultResourceQuota"] = props["defaultResourceQuota"]
            if body.get("tags") is not None:
                ns["tags"] = body["tags"]
            self._managed_namespaces[key] = ns
            op = self._new_op(
                "Microsoft.ContainerService",
                "update" if existing else "create",
                ns["id"],
                self.namespace_seconds,
                self._finish_namespace(key, ns, name),
            )
            self._namespace_ops[key] = op.id
            return (200 if existing else 201), self._lro_headers(op, ctx.params.get("api-version")), copy.deepcopy(ns)

    def _finish_namespace(
        self, key: str, ns: dict[str, Any], name: str
    ) -> Callable[[], tuple[None, list[Callable[[], None]]]]:
        def settle() -> None:
            # The namespace appears in the cluster first, then ARM says Succeeded: whoever sees
            # Succeeded can use the namespace at once.
            failure: BaseException | None = None
            try:
                if self.on_namespace_created is not None:
                    self.on_namespace_created(name)
            except BaseException as exc:
                failure = exc
            with self._lock:
                if self._managed_namespaces.get(key) is ns:
                    ns["properties"]["provisioningState"] = "Failed" if failure else "Succeeded"
            if failure is not None:
                raise failure

        def complete() -> tuple[None, list[Callable[[], None]]]:
            return None, [settle]

        return complete

    def _namespace_delete(self, ctx: _Ctx) -> _Result:
        with self._lock:
            key = self._namespace_key(ctx.g)
            ns = self._managed_namespaces.get(key)
            if ns is None:
                return 204, {}, None
            self._parent_for_write(ctx.g)
            running = self._namespace_running(key)
            if running is not None:
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Operation is not allowed because there's an in progress {running.kind} managed namespace "
                    f"operation on '{ns['name']}'. Please try again later.",
                )
            ns["properties"]["provisioningState"] = "Deleting"
            name, delete_in_cluster = ns["name"], ns["properties"].get("deletePolicy") == "Delete"

            def complete() -> tuple[None, list[Callable[[], None]]]:
                self._managed_namespaces.pop(key, None)
                hook = self.on_namespace_deleted
                return None, ([lambda: hook(name)] if hook is not None and delete_in_cluster else [])

            op = self._new_op("Microsoft.ContainerService", "delete", ns["id"], self.namespace_seconds, complete)
            self._namespace_ops[key] = op.id
            return 202, self._lro_headers(op, ctx.params.get("api-version")), None
