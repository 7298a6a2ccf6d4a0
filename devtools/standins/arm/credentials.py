"""AKS ``listClusterUserCredential`` / ``listClusterAdminCredential``: the kubeconfig a caller gets
for a managed cluster (Entra ID exec plugin for users, a static admin credential)."""

from __future__ import annotations

import base64
from typing import Any

import yaml

from devtools.standins.arm.catalog import (
    ArmError,
    stable_guid,
)
from devtools.standins.arm.common import (
    _Ctx,
    _Result,
)
from devtools.standins.arm.identity import (
    AKS_AAD_SERVER_APP_ID,
)
from devtools.tls import shared_ca


class ClusterCredentials:
    """The two credential actions on a managed cluster."""

    def _kubeconfig(self, c: dict[str, Any], *, admin: bool) -> bytes:
        if self.kubeconfig_cluster is not None:
            server, ca_pem = self.kubeconfig_cluster
        else:
            server, ca_pem = f"https://{c['properties']['fqdn']}:443", shared_ca().ca_pem
        rg = c["id"].split("/")[4]
        name = c["name"]
        user_name = f"{'clusterAdmin' if admin else 'clusterUser'}_{rg}_{name}"
        user: dict[str, Any]
        if admin:
            user = {"token": stable_guid(c["id"], "admin-token").replace("-", "")}
        else:
            user = {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "kubelogin",
                    "args": [
                        "get-token",
                        "--environment",
                        "AzurePublicCloud",
                        "--server-id",
                        AKS_AAD_SERVER_APP_ID,
                        "--client-id",
                        "80faf920-1908-4b52-b5ef-a8e7bedfc67a",
                        "--tenant-id",
                        self.tenant_id,
                        "--login",
                        "devicecode",
                    ],
                    "env": None,
                    "installHint": "\nkubelogin is not installed which is required to connect to AAD enabled cluster.\n",
                    "interactiveMode": "IfAvailable",
                    "provideClusterInfo": False,
                }
            }
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {
                        "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                        "server": server,
                    },
                }
            ],
            "contexts": [{"name": name + ("-admin" if admin else ""), "context": {"cluster": name, "user": user_name}}],
            "current-context": name + ("-admin" if admin else ""),
            "preferences": {},
            "users": [{"name": user_name, "user": user}],
        }
        return yaml.safe_dump(cfg, sort_keys=False).encode()

    def _cluster_user_credential(self, ctx: _Ctx) -> _Result:
        with self._lock:
            c = self._cluster(ctx.g)
            value = base64.b64encode(self._kubeconfig(c, admin=False)).decode()
            return 200, {}, {"kubeconfigs": [{"name": "clusterUser", "value": value}]}

    def _cluster_admin_credential(self, ctx: _Ctx) -> _Result:
        with self._lock:
            c = self._cluster(ctx.g)
            if c["properties"].get("disableLocalAccounts"):
                raise ArmError(
                    400,
                    "BadRequest",
                    "Getting static credential isn't allowed because this cluster is set to disable local accounts.",
                )
            value = base64.b64encode(self._kubeconfig(c, admin=True)).decode()
            return 200, {}, {"kubeconfigs": [{"name": "clusterAdmin", "value": value}]}
