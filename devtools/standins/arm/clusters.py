"""``Microsoft.ContainerService/managedClusters`` as the ARM stand-in serves it: create, update (the
virtual node add-on and its subnet) and delete, as long-running operations with AKS's refusals."""

from __future__ import annotations

import copy
import ipaddress
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from devtools.standins.arm.catalog import (
    ACI_DELEGATION_SERVICE,
    DEFAULT_KUBERNETES_VERSION,
    ArmError,
    networks_overlap,
    stable_guid,
)
from devtools.standins.arm.common import (
    _Ctx,
    _key,
    _Result,
)
from devtools.standins.arm.identity import (
    Principal,
)
from devtools.standins.arm.operations import _Op


class ManagedClusters:
    """managedClusters PUT/GET/DELETE and lists; ``_in_progress`` refuses concurrent writes."""

    def _cluster_id(self, g: dict[str, str]) -> str:
        rg = self._rg(g["rg"])
        # AKS answers with a lower-case "resourcegroups" segment; compare ids case-insensitively.
        return (
            f"/subscriptions/{self.subscription_id}/resourcegroups/{rg['name']}"
            f"/providers/Microsoft.ContainerService/managedClusters/{g['name']}"
        )

    def _cluster(self, g: dict[str, str]) -> dict[str, Any]:
        c = self._clusters.get(_key(self._cluster_id(g)))
        if c is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.ContainerService/managedClusters/{g['name']}' under resource group "
                f"'{g['rg']}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        return c

    def _cluster_list(self, ctx: _Ctx) -> _Result:
        with self._lock:
            prefix = f"/subscriptions/{self.subscription_id}".lower()
            if "rg" in ctx.g:
                prefix = _key(self._rg(ctx.g["rg"])["id"])
            return (
                200,
                {},
                {"value": [copy.deepcopy(c) for k, c in self._clusters.items() if k.startswith(prefix + "/")]},
            )

    def _cluster_get(self, ctx: _Ctx) -> _Result:
        with self._lock:
            return 200, {}, copy.deepcopy(self._cluster(ctx.g))

    def _in_progress(self, key: str) -> _Op | None:
        op_id = self._cluster_ops.get(key)
        op = self._ops.get(op_id) if op_id else None
        return op if op is not None and op.status == "InProgress" else None

    def _conflict(self, op: _Op, name: str) -> ArmError:
        until = datetime.fromtimestamp(time.time() + max(0.0, op.done_at - time.monotonic()), UTC)
        return ArmError(
            409,
            "OperationNotAllowed",
            f"Operation is not allowed because there's an in progress {op.kind} managed cluster operation on "
            f"'{name}' which will be completed by {until.strftime('%Y-%m-%dT%H:%M:%SZ')}. "
            "Please try again later.",
        )

    @staticmethod
    def _aci_profile(props: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        for k, v in (props.get("addonProfiles") or {}).items():
            if k.lower() == "aciconnectorlinux" and isinstance(v, dict):
                return k, v
        return None, None

    def _subnet_or_none(self, subnet_id: str | None) -> dict[str, Any] | None:
        return self._find(subnet_id) if subnet_id and "/subnets/" in subnet_id.lower() else None

    def _validate_cluster(
        self, cid: str, name: str, body: dict[str, Any], existing: dict[str, Any] | None, principal: Principal
    ) -> dict[str, Any]:
        """The 400s AKS answers synchronously; returns the normalized network profile."""

        def bad(message: str, code: str = "InvalidParameter") -> ArmError:
            return ArmError(400, code, message)

        if not body.get("location"):
            raise bad("The location property is required for this definition.", "LocationRequired")
        props = body.get("properties") or {}
        pools = props.get("agentPoolProfiles") or []
        if not pools:
            raise bad(
                "The value of parameter agentPoolProfiles is invalid: at least one System agent pool is required."
            )
        if not props.get("dnsPrefix") and not props.get("fqdnSubdomain") and existing is None:
            raise bad("The value of parameter dnsPrefix is invalid: dnsPrefix or fqdnSubdomain is required.")
        ident = body.get("identity") or {}
        if not ident.get("type") and not props.get("servicePrincipalProfile"):
            raise bad("A managed identity (identity.type) or servicePrincipalProfile is required.")

        given_np = {k: v for k, v in (props.get("networkProfile") or {}).items() if v is not None}
        if existing is not None:
            old_np = existing["properties"].get("networkProfile") or {}
            for fld in ("networkPlugin", "networkPluginMode", "serviceCidr", "dnsServiceIP"):
                if fld in given_np and given_np[fld] != old_np.get(fld):
                    raise bad(f"Changing property 'networkProfile.{fld}' is not allowed.", "PropertyChangeNotAllowed")
            np = dict(old_np) | given_np
        else:
            np = dict(given_np)
            if "networkPlugin" not in np:
                # UNVERIFIED: recent API versions default new clusters to Azure CNI overlay
                np |= {"networkPlugin": "azure", "networkPluginMode": "overlay"}
            np.setdefault("serviceCidr", "10.0.0.0/16")
            np.setdefault("dnsServiceIP", "10.0.0.10")
        try:
            service_cidr = ipaddress.ip_network(np["serviceCidr"], strict=True)
        except ValueError:
            raise bad(f"The value of parameter networkProfile.serviceCidr is invalid: '{np['serviceCidr']}'.") from None
        try:
            dns_ip = ipaddress.ip_address(np["dnsServiceIP"])
        except ValueError:
            raise bad(
                f"The value of parameter networkProfile.dnsServiceIP is invalid: '{np['dnsServiceIP']}'."
            ) from None
        if dns_ip not in service_cidr or dns_ip == service_cidr.network_address:
            raise bad(
                f"The DNSServiceIP '{dns_ip}' must be within the Kubernetes service address range specified by "
                f"ServiceCidr '{service_cidr}' and must not be its first address.",
                "InvalidDNSServiceIP",
            )

        vnet_ids: set[str] = set()
        for pool in pools:
            sid = pool.get("vnetSubnetID")
            if not sid:
                continue
            subnet = self._subnet_or_none(sid)
            if subnet is None:
                raise bad(
                    f"The value of parameter agentPoolProfile.vnetSubnetID is invalid: subnet '{sid}' was not found."
                )
            for d in subnet["properties"].get("delegations") or []:
                raise bad(
                    f"Subnet '{sid}' is delegated to '{d['properties']['serviceName']}'; an agent pool subnet must not "
                    "be delegated.",
                    "SubnetIsDelegated",
                )
            action = "Microsoft.Network/virtualNetworks/subnets/join/action"
            if not self.is_authorized(principal.object_id, action, sid):
                raise ArmError(
                    403,
                    "LinkedAuthorizationFailed",
                    f"The client '{principal.client_id}' with object id '{principal.object_id}' has permission to "
                    f"perform action 'Microsoft.ContainerService/managedClusters/write' on scope '{cid}'; however, it "
                    f"does not have permission to perform action(s) '{action}' on the linked scope(s) '{sid}' "
                    "(respectively) or the linked scope(s) are invalid.",
                )
            vnet_ids.add(_key(sid.lower().split("/subnets/")[0]))
        for vk in vnet_ids:
            for s in self._vnets[vk]["properties"]["subnets"]:
                if networks_overlap(service_cidr, ipaddress.ip_network(s["properties"]["addressPrefix"])):
                    raise bad(
                        f"The specified service CIDR {service_cidr} is conflicted with an existing subnet CIDR "
                        f"{s['properties']['addressPrefix']}",
                        "ServiceCidrOverlapExistingSubnetsCidr",
                    )

        _, aci = self._aci_profile(props)
        if aci and aci.get("enabled"):
            if np.get("networkPlugin") != "azure" or np.get("networkPluginMode") == "overlay":
                raise bad(
                    "The aciConnectorLinux (virtual node) addon requires networkProfile.networkPlugin 'azure' "
                    f"without overlay; got '{np.get('networkPlugin')}'"
                    + (f" ({np['networkPluginMode']})" if np.get("networkPluginMode") else "")
                    + ".",
                    "AddonRequiresAzureCNI",
                )
            if any(str(f).lower() == "ipv6" for f in np.get("ipFamilies") or []):
                raise bad("The aciConnectorLinux addon does not support dual-stack (IPv6) clusters.")
            subnet_name = (aci.get("config") or {}).get("SubnetName")
            if not subnet_name:
                raise bad("The aciConnectorLinux addon requires config 'SubnetName'.")
            pool_sid = next((p["vnetSubnetID"] for p in pools if p.get("vnetSubnetID")), None)
            if not pool_sid:
                raise bad(
                    "The aciConnectorLinux addon requires agent pools in a custom virtual network (vnetSubnetID)."
                )
            vnet_id = pool_sid.split("/subnets/")[0] if "/subnets/" in pool_sid else pool_sid.rsplit("/", 2)[0]
            aci_sid = f"{vnet_id}/subnets/{subnet_name}"
            if self._find(aci_sid) is None:
                raise bad(
                    f"The aciConnectorLinux subnet '{subnet_name}' was not found in virtual network '{vnet_id}'; it must "
                    "be in the same virtual network as the agent pool subnet.",
                    "SubnetNotFound",
                )
            if _key(aci_sid) == _key(pool_sid):
                raise bad("The aciConnectorLinux subnet must not be the agent pool subnet.")
            if not self._provider_registered("Microsoft.ContainerInstance"):
                raise ArmError(
                    400,
                    "MissingSubscriptionRegistration",
                    "The subscription is not registered to use namespace 'Microsoft.ContainerInstance'. See "
                    "https://aka.ms/rps-not-found for how to register subscriptions.",
                )

        if existing is not None:
            old = existing["properties"]
            if props.get("dnsPrefix") and props["dnsPrefix"] != old.get("dnsPrefix"):
                raise bad("Changing property 'dnsPrefix' is not allowed.", "PropertyChangeNotAllowed")
            old_pools = {p.get("name"): p for p in old.get("agentPoolProfiles") or []}
            for p in pools:
                o = old_pools.get(p.get("name"))
                if o and p.get("vnetSubnetID") and _key(p["vnetSubnetID"]) != _key(o.get("vnetSubnetID") or ""):
                    raise bad(
                        "Changing property 'agentPoolProfile.vnetSubnetID' is not allowed.", "PropertyChangeNotAllowed"
                    )
        return np

    def _cluster_put(self, ctx: _Ctx) -> _Result:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        with self._lock:
            cid = self._cluster_id(ctx.g)
            key = _key(cid)
            existing = self._clusters.get(key)
            name = existing["name"] if existing else ctx.g["name"]
            cid = existing["id"] if existing else cid
            running = self._in_progress(key)
            if running is not None:
                raise self._conflict(running, name)
            np = self._validate_cluster(cid, name, body, existing, ctx.principal)
            props_in = copy.deepcopy(body.get("properties") or {})
            old = existing["properties"] if existing else {}
            rg_name = self._rg(ctx.g["rg"])["name"]
            location = body["location"]
            state = "Updating" if existing else "Creating"

            pools = []
            for p in props_in.get("agentPoolProfiles") or []:
                pool = {
                    "count": 1,
                    "vmSize": "Standard_D2s_v5",
                    "osType": "Linux",
                    "osSKU": "Ubuntu",
                    "osDiskSizeGB": 128,
                    "type": "VirtualMachineScaleSets",
                    "mode": "System",
                    "enableAutoScaling": False,
                    "maxPods": 250 if np.get("networkPluginMode") == "overlay" else 30,
                    "orchestratorVersion": props_in.get("kubernetesVersion") or DEFAULT_KUBERNETES_VERSION,
                    "currentOrchestratorVersion": props_in.get("kubernetesVersion") or DEFAULT_KUBERNETES_VERSION,
                    "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202507.01.0",
                    "powerState": {"code": "Running"},
                } | {k: v for k, v in p.items() if v is not None}
                pool["provisioningState"] = state
                pools.append(pool)

            network_profile = {
                "outboundType": "loadBalancer",
                "loadBalancerSku": "standard",
                "ipFamilies": ["IPv4"],
            } | np
            network_profile["serviceCidrs"] = [network_profile["serviceCidr"]]
            if network_profile.get("networkPluginMode") == "overlay":
                network_profile.setdefault("podCidr", "10.244.0.0/16")
                network_profile["podCidrs"] = [network_profile["podCidr"]]

            ident_type = (body.get("identity") or {}).get("type")
            identity: dict[str, Any] | None = None
            if ident_type == "SystemAssigned":
                identity = {
                    "type": "SystemAssigned",
                    "principalId": stable_guid(cid, "identity"),
                    "tenantId": self.tenant_id,
                }
                self.tokens.add_principal(Principal(identity["principalId"], stable_guid(cid, "identity-client")))
            elif ident_type:
                identity = copy.deepcopy(body["identity"])
            elif existing is not None and existing.get("identity"):
                identity = copy.deepcopy(existing["identity"])

            node_rg = (
                old.get("nodeResourceGroup") or props_in.get("nodeResourceGroup") or f"MC_{rg_name}_{name}_{location}"
            )
            dns_prefix = props_in.get("dnsPrefix") or old.get("dnsPrefix") or name
            fqdn = old.get("fqdn") or f"{dns_prefix}-{stable_guid(cid)[:8]}.hcp.{location}.azmk8s.io"
            kubelet_rid = (
                f"/subscriptions/{self.subscription_id}/resourcegroups/{node_rg}/providers/"
                f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}-agentpool"
            )
            props: dict[str, Any] = {
                "kubernetesVersion": DEFAULT_KUBERNETES_VERSION,
                "enableRBAC": True,
                "disableLocalAccounts": False,
                "supportPlan": "KubernetesOfficial",
                "maxAgentPools": 100,
            } | {k: v for k, v in props_in.items() if v is not None}
            props |= {
                "provisioningState": state,
                "powerState": {"code": "Running"},
                "currentKubernetesVersion": props.get("kubernetesVersion", DEFAULT_KUBERNETES_VERSION),
                "dnsPrefix": dns_prefix,
                "fqdn": fqdn,
                "azurePortalFQDN": fqdn.replace(".hcp.", ".portal.hcp."),
                "nodeResourceGroup": node_rg,
                "agentPoolProfiles": pools,
                "networkProfile": network_profile,
                "identityProfile": {
                    "kubeletidentity": {
                        "resourceId": kubelet_rid,
                        "clientId": stable_guid(cid, "kubelet-client"),
                        "objectId": stable_guid(cid, "kubelet"),
                    }
                },
            }
            self.tokens.add_principal(Principal(stable_guid(cid, "kubelet"), stable_guid(cid, "kubelet-client")))
            if props.get("aadProfile") is not None:
                props["aadProfile"] = {"tenantID": self.tenant_id} | props["aadProfile"]
            # keep addon identities of addons that stay enabled; new ones appear when the LRO succeeds
            aci_key, aci = self._aci_profile(props)
            _, old_aci = self._aci_profile(old)
            if aci is not None and aci_key is not None:
                aci = dict(aci)
                aci.setdefault("config", {})
                if aci.get("enabled") and old_aci and old_aci.get("enabled") and old_aci.get("identity"):
                    aci["identity"] = old_aci["identity"]
                else:
                    aci.pop("identity", None)
                props["addonProfiles"] = dict(props["addonProfiles"]) | {aci_key: aci}

            cluster = {
                "id": cid,
                "location": location,
                "name": name,
                "type": "Microsoft.ContainerService/ManagedClusters",
                "sku": body.get("sku") or {"name": "Base", "tier": "Free"},
                "properties": props,
            }
            if body.get("tags") is not None:
                cluster["tags"] = body["tags"]
            if identity is not None:
                cluster["identity"] = identity
            self._clusters[key] = cluster
            enabling = bool(aci and aci.get("enabled") and not aci.get("identity"))
            seconds = (
                self.cluster_create_seconds
                if existing is None
                else (
                    self.addon_enable_seconds
                    if enabling or (old_aci or {}).get("enabled") != (aci or {}).get("enabled")
                    else self.network_seconds
                )
            )
            op = self._new_op(
                "Microsoft.ContainerService",
                "update" if existing else "create",
                cid,
                seconds,
                self._finish_cluster(key),
            )
            self._cluster_ops[key] = op.id
            return (
                (200 if existing else 201),
                self._lro_headers(op, ctx.params.get("api-version")),
                copy.deepcopy(cluster),
            )

    def _finish_cluster(self, key: str) -> Callable[[], tuple[dict[str, Any] | None, list[Callable[[], None]]]]:
        def complete() -> tuple[dict[str, Any] | None, list[Callable[[], None]]]:
            c = self._clusters.get(key)
            if c is None:
                return None, []
            props = c["properties"]
            hooks: list[Callable[[], None]] = []
            error: dict[str, Any] | None = None
            _, aci = self._aci_profile(props)
            pool_sid = next((p["vnetSubnetID"] for p in props["agentPoolProfiles"] if p.get("vnetSubnetID")), None)
            if aci is not None and aci.get("enabled") and not aci.get("identity") and pool_sid:
                subnet_name = aci["config"].get("SubnetName", "")
                aci_sid = f"{pool_sid.split('/subnets/')[0]}/subnets/{subnet_name}"
                subnet = self._find(aci_sid)
                if subnet is None:
                    error = {
                        "code": "SubnetNotFound",
                        "message": f"The aciConnectorLinux subnet '{aci_sid}' was not found.",
                    }
                else:
                    services = [d["properties"]["serviceName"] for d in subnet["properties"].get("delegations") or []]
                    foreign = [s for s in services if s.lower() != ACI_DELEGATION_SERVICE.lower()]
                    if foreign:
                        error = {
                            "code": "SubnetDelegationConflict",
                            "message": f"Subnet '{subnet['id']}' is delegated to '{foreign[0]}'. The virtual node "
                            f"(aciConnectorLinux) subnet must be delegated to '{ACI_DELEGATION_SERVICE}' or not "
                            "delegated at all.",
                        }
                    else:
                        if not services:
                            subnet["properties"]["delegations"] = self._delegations(
                                subnet["id"],
                                [{"name": "aciDelegation", "properties": {"serviceName": ACI_DELEGATION_SERVICE}}],
                            )
                        subnet["properties"]["serviceAssociationLinks"] = [
                            {
                                "name": "aciconnectorlinux",
                                "id": f"{subnet['id']}/serviceAssociationLinks/aciconnectorlinux",
                                "type": "Microsoft.Network/virtualNetworks/subnets/serviceAssociationLinks",
                                "properties": {
                                    "linkedResourceType": ACI_DELEGATION_SERVICE,
                                    "link": c["id"],
                                    "provisioningState": "Succeeded",
                                },
                            }
                        ]
                        cid = c["id"]
                        aci["identity"] = {
                            "resourceId": f"/subscriptions/{self.subscription_id}/resourcegroups/"
                            f"{props['nodeResourceGroup']}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
                            f"aciconnectorlinux-{c['name'].lower()}",
                            "clientId": stable_guid(cid, "aci-client"),
                            "objectId": stable_guid(cid, "aci"),
                        }
                        self.tokens.add_principal(Principal(stable_guid(cid, "aci"), stable_guid(cid, "aci-client")))
                        if self.on_virtual_node_enabled is not None:
                            hooks.append(self.on_virtual_node_enabled)
            elif aci is not None and not aci.get("enabled"):
                aci.pop("identity", None)
            state = "Failed" if error else "Succeeded"
            props["provisioningState"] = state
            for p in props["agentPoolProfiles"]:
                p["provisioningState"] = state
            return error, hooks

        return complete

    def _cluster_delete(self, ctx: _Ctx) -> _Result:
        with self._lock:
            key = _key(self._cluster_id(ctx.g))
            c = self._clusters.get(key)
            if c is None:
                return 204, {}, None
            running = self._in_progress(key)
            if running is not None:
                raise self._conflict(running, c["name"])
            c["properties"]["provisioningState"] = "Deleting"

            def complete() -> tuple[None, list[Callable[[], None]]]:
                gone = self._clusters.pop(key, None)
                for ns_key in [k for k in self._managed_namespaces if k.startswith(key + "/managednamespaces/")]:
                    self._managed_namespaces.pop(ns_key, None)
                for v in self._vnets.values():
                    for s in v["properties"]["subnets"]:
                        links = s["properties"].get("serviceAssociationLinks") or []
                        if gone and any(_key(lk["properties"]["link"]) == key for lk in links):
                            s["properties"].pop("serviceAssociationLinks", None)
                return None, []

            op = self._new_op("Microsoft.ContainerService", "delete", c["id"], self.cluster_create_seconds, complete)
            self._cluster_ops[key] = op.id
            return 202, self._lro_headers(op, ctx.params.get("api-version")), None
