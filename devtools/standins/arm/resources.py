"""``Microsoft.Resources`` as the ARM stand-in serves it: resource groups and resource provider
registration (NotRegistered -> Registering -> Registered)."""

from __future__ import annotations

import copy
import time
from typing import Any

from devtools.standins.arm.catalog import (
    ArmError,
)
from devtools.standins.arm.common import (
    _Ctx,
    _Result,
)


class ResourceGroups:
    """Resource groups (made by ``create_resource_group``) and providers (``_providers``)."""

    def create_resource_group(self, name: str, location: str | None = None) -> dict[str, Any]:
        with self._lock:
            rg = {
                "id": f"/subscriptions/{self.subscription_id}/resourceGroups/{name}",
                "name": name,
                "type": "Microsoft.Resources/resourceGroups",
                "location": location or self.location,
                "properties": {"provisioningState": "Succeeded"},
            }
            self._rgs[name.lower()] = rg
            return copy.deepcopy(rg)

    # ------------------------------------------------------------------ resource groups / providers
    def _rg(self, name: str) -> dict[str, Any]:
        rg = self._rgs.get(name.lower())
        if rg is None:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
        return rg

    def _rg_get(self, ctx: _Ctx) -> _Result:
        with self._lock:
            return 200, {}, copy.deepcopy(self._rg(ctx.g["rg"]))

    def _rg_head(self, ctx: _Ctx) -> _Result:
        with self._lock:
            return (204 if ctx.g["rg"].lower() in self._rgs else 404), {}, None

    def _provider_body(self, ns_lower: str) -> dict[str, Any]:
        p = self._providers[ns_lower]
        return {
            "id": f"/subscriptions/{self.subscription_id}/providers/{p['namespace']}",
            "namespace": p["namespace"],
            "registrationState": p["state"],
            "registrationPolicy": "RegistrationRequired",
            "resourceTypes": [
                {"resourceType": t, "locations": ["West US", "East US"], "apiVersions": ["2024-01-01"]}
                for t in p["types"]
            ],
        }

    def _provider(self, ns: str) -> dict[str, Any]:
        p = self._providers.get(ns.lower())
        if p is None:
            raise ArmError(404, "InvalidResourceNamespace", f"The resource namespace '{ns}' is invalid.")
        return p

    def _provider_get(self, ctx: _Ctx) -> _Result:
        with self._lock:
            self._provider(ctx.g["ns"])
            return 200, {}, self._provider_body(ctx.g["ns"].lower())

    def _provider_register(self, ctx: _Ctx) -> _Result:
        with self._lock:
            p = self._provider(ctx.g["ns"])
            if p["state"] in ("NotRegistered", "Unregistered"):
                p["state"] = "Registering"
                p["ready_at"] = time.monotonic() + self.provider_register_seconds
            return 200, {}, self._provider_body(ctx.g["ns"].lower())

    def _provider_registered(self, ns: str) -> bool:
        return bool(self._providers[ns.lower()]["state"] == "Registered")
