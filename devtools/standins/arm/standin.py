"""An Azure Resource Manager stand-in over real HTTPS on loopback, for the app's real SDK clients.

The app's ``ContainerServiceClient``, ``NetworkManagementClient``, ``AuthorizationManagementClient``
and ``azure.mgmt.resource.resources.ResourceManagementClient`` are built with
``base_url=standin.url`` and ``credential=DefaultAzureCredential()`` and talk to this server
unchanged. Tokens come from the stand-in's managed-identity endpoint (App Service protocol, see
``identity.py``); :meth:`ArmStandIn.credential_env` gives the environment that makes
azure-identity use it and azure-core trust the test CA.

Modelled (paths as the SDKs send them; api-version is recorded, not enforced):

* ``GET|HEAD /subscriptions/{s}/resourcegroups/{rg}`` (case-insensitive; groups are made by
  :meth:`create_resource_group`).
* ``GET /subscriptions/{s}/providers/{ns}``, ``POST .../{ns}/register`` (NotRegistered ->
  Registering -> Registered after ``provider_register_seconds``).
* ``Microsoft.Network/virtualNetworks/{vnet}`` PUT/GET/DELETE (+ list), ``.../subnets/{name}``
  PUT/GET/DELETE (+ list). PUT replaces the inline subnet list, as ARM does. A subnet created at
  api-version >= 2025-07-01 without ``defaultOutboundAccess`` is private (``false``): no egress
  for what runs in it unless a NAT gateway or route table is attached (:func:`subnet_egress`).
* ``Microsoft.ContainerService/managedClusters/{name}`` PUT/GET/DELETE (+ lists),
  ``listClusterUserCredential``, ``listClusterAdminCredential``; ``POST .../stop`` and ``.../start``
  (power state, in ``power.py``).
* ``.../managedClusters/{name}/managedNamespaces/{ns}`` PUT/GET/DELETE (+ list): an LRO on an
  existing cluster (404 ``ParentResourceNotFound`` while the cluster is absent or not Succeeded,
  409 while an operation runs on it). When a create or update succeeds, ``on_namespace_created(ns)``
  runs before the namespace shows ``Succeeded`` (tests wire it to the Kubernetes stand-in); a
  delete with ``deletePolicy: Delete`` runs ``on_namespace_deleted(ns)``.
* ``{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`` PUT/GET/DELETE and list at
  scope with ``$filter``; ``{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}``.
  A scope must exist; Azure RBAC for Kubernetes' namespace scopes ``{clusterId}/namespaces/{ns}``
  and ``{clusterId}/managedNamespaces/{ns}`` need only the cluster (the namespace may not exist yet).
  Custom roles: ``.../roleDefinitions/{guid}`` PUT (needs ``roleDefinitions/write``).
* LROs: PUT/DELETE answer with ``Azure-AsyncOperation`` + ``Location`` headers pointing at
  ``/subscriptions/{s}/providers/{ns}/locations/{loc}/operations/{id}`` (status document) and
  ``.../operationresults/{id}``. Poll hints use ``retry-after-ms`` (azure-core honours it) so the
  SDK pollers are fast; real ARM sends ``Retry-After`` in whole seconds.

Authorization: every ARM route maps to an operation string (``Microsoft.Network/virtualNetworks/write``
...) checked against :meth:`grant`/:meth:`revoke` rules and the principal's role assignments, whose
ABAC conditions are evaluated for role assignment writes and deletes (``authorization.py``,
``conditions.py``); failures are the real ``AuthorizationFailed`` 403. Reading providers, role definitions and operation status needs only a
valid token.
"""

from __future__ import annotations

import copy
import os
import random
import re
import threading
from collections.abc import Callable
from typing import Any

from devtools.standins.arm.authorization import Authorization, _Rule
from devtools.standins.arm.catalog import (
    PROVIDERS,
)
from devtools.standins.arm.clusters import ManagedClusters
from devtools.standins.arm.common import (
    _AKS,
    _AUTHZ,
    _NET,
    _RG,
    _S,
    ARM_AUDIENCE,
    _Handler,
    _key,
)
from devtools.standins.arm.credentials import ClusterCredentials
from devtools.standins.arm.faults import FaultInjection, _Fault
from devtools.standins.arm.identity import (
    AKS_AAD_SERVER_APP_ID,
    IdentityEndpoint,
    Principal,
    TokenRequest,
    TokenStore,
)
from devtools.standins.arm.namespaces import ManagedNamespaces
from devtools.standins.arm.network import Network
from devtools.standins.arm.operations import Operations, _Op
from devtools.standins.arm.power import Power
from devtools.standins.arm.resources import ResourceGroups
from devtools.standins.arm.server import HttpFront, RecordedRequest, _ArmServer
from devtools.tls import shared_ca

__all__ = [
    "AKS_AAD_SERVER_APP_ID",
    "ARM_AUDIENCE",
    "CREDENTIAL_ENV_CONFLICTS",
    "ArmStandIn",
    "RecordedRequest",
    "TokenRequest",
]

DEFAULT_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000001"
DEFAULT_TENANT_ID = "00000000-0000-0000-0000-0000000000aa"
DEFAULT_APP_PRINCIPAL_ID = "11111111-1111-1111-1111-111111111111"
DEFAULT_APP_CLIENT_ID = "22222222-2222-2222-2222-222222222222"

# Environment variables that would divert DefaultAzureCredential away from the stand-in's
# managed-identity endpoint (or reach a real tenant). Tests delete them (monkeypatch.delenv).
CREDENTIAL_ENV_CONFLICTS = (
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "CURL_CA_BUNDLE",
)


class ArmStandIn(
    HttpFront,
    FaultInjection,
    Operations,
    Authorization,
    ResourceGroups,
    Network,
    ManagedClusters,
    ManagedNamespaces,
    ClusterCredentials,
    Power,
):
    """In-process ARM + managed-identity stand-in; see the module docstring."""

    def __init__(
        self,
        *,
        subscription_id: str = DEFAULT_SUBSCRIPTION_ID,
        tenant_id: str = DEFAULT_TENANT_ID,
        app_principal_id: str = DEFAULT_APP_PRINCIPAL_ID,
        app_client_id: str = DEFAULT_APP_CLIENT_ID,
        cluster_resource_group: str = "rg-aks",
        location: str = "westus",
        kubeconfig_cluster: tuple[str, bytes] | None = None,
        on_virtual_node_enabled: Callable[[], None] | None = None,
        on_namespace_created: Callable[[str], None] | None = None,
        on_namespace_deleted: Callable[[str], None] | None = None,
        cluster_create_seconds: float = 0.5,
        addon_enable_seconds: float = 0.3,
        provider_register_seconds: float = 0.2,
        network_seconds: float = 0.05,
        namespace_seconds: float = 0.1,
        token_lifetime_seconds: int = 3600,
        port: int = 0,
        poll_interval_ms: int = 50,
        seed: int = 0,
        app_rights: str = "everything",
    ) -> None:
        self.subscription_id = subscription_id
        self.tenant_id = tenant_id
        self.app_principal_id = app_principal_id
        self.app_client_id = app_client_id
        self.cluster_resource_group = cluster_resource_group
        self.location = location
        self.kubeconfig_cluster = kubeconfig_cluster
        self.on_virtual_node_enabled = on_virtual_node_enabled
        self.on_namespace_created = on_namespace_created
        self.on_namespace_deleted = on_namespace_deleted
        self.cluster_create_seconds = cluster_create_seconds
        self.addon_enable_seconds = addon_enable_seconds
        self.provider_register_seconds = provider_register_seconds
        self.network_seconds = network_seconds
        self.namespace_seconds = namespace_seconds
        self.poll_interval_ms = poll_interval_ms

        self._lock = threading.RLock()
        self._rand = random.Random(seed)
        self.tokens = TokenStore(lifetime_seconds=token_lifetime_seconds, tenant_id=tenant_id)
        self.tokens.add_principal(Principal(app_principal_id, app_client_id, "ServicePrincipal", "vnode-batch-app"))
        self._identity = IdentityEndpoint(self.tokens, lambda: self.app_principal_id)
        self._server = _ArmServer(self, port)
        self._server.socket = (
            shared_ca()
            .server_context()
            .wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        )
        self._thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()

        self.requests: list[RecordedRequest] = []
        self.hook_errors: list[BaseException] = []
        self._faults: list[_Fault] = []
        self._grants: list[_Rule] = []
        self._denies: list[_Rule] = []
        self._rgs: dict[str, dict[str, Any]] = {}
        self._providers: dict[str, dict[str, Any]] = {
            ns.lower(): {"namespace": ns, "state": state, "ready_at": None, "types": types}
            for ns, (state, types) in PROVIDERS.items()
        }
        self._vnets: dict[str, dict[str, Any]] = {}
        self._clusters: dict[str, dict[str, Any]] = {}
        self._cluster_ops: dict[str, str] = {}  # cluster key -> op id in progress
        self._role_assignments: dict[str, dict[str, Any]] = {}
        self._custom_roles: dict[str, dict[str, Any]] = {}  # role definition GUID -> body
        self._managed_namespaces: dict[str, dict[str, Any]] = {}
        self._namespace_ops: dict[str, str] = {}  # managed namespace key -> op id in progress
        self._ops: dict[str, _Op] = {}
        # Managed-cluster stop/start (devtools/standins/arm/power.py): LRO durations, a hook run
        # when a power state is reached, and the transitions seen (for tests and bench/idle.py).
        self.cluster_stop_seconds = 0.3
        self.cluster_start_seconds = 0.5
        self.on_power_changed: Callable[[str], None] | None = None
        self.power_transitions: list[tuple[str, str]] = []
        self._routes = self._build_routes()

        # app_rights="everything": the app may do anything in its cluster resource group (tests of
        # ARM behaviour). "assigned": only what role assignments give it, as in Azure (tests of
        # infra/'s roles deploy them with the deployer's rights, see tests/integration/rights.py).
        if app_rights == "everything":
            self.grant(
                app_principal_id, f"/subscriptions/{subscription_id}/resourceGroups/{cluster_resource_group}", ["*"]
            )
        elif app_rights != "assigned":
            raise ValueError(f"app_rights: 'everything' or 'assigned', not {app_rights!r}")

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def identity_endpoint(self) -> str:
        return self._identity.url

    @property
    def identity_header(self) -> str:
        return self._identity.secret

    @property
    def token_requests(self) -> list[TokenRequest]:
        """Calls to the managed-identity endpoint (resource, client_id, status)."""
        with self._identity._lock:
            return list(self._identity.requests)

    def start(self) -> ArmStandIn:
        self._identity.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="arm-standin", daemon=True
        )
        self._thread.start()
        self._ticker = threading.Thread(target=self._tick, name="arm-standin-lro", daemon=True)
        self._ticker.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None
        self._identity.stop()

    def __enter__(self) -> ArmStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick(self) -> None:
        while not self._stopping.wait(0.02):
            self._advance()

    # ------------------------------------------------------------------ credentials
    def credential_env(self) -> dict[str, str]:
        """Env for DefaultAzureCredential -> ManagedIdentityCredential (App Service flow) -> this stand-in.

        Also delete every name in ``CREDENTIAL_ENV_CONFLICTS`` (IDENTITY_SERVER_THUMBPRINT would
        switch azure-identity to Service Fabric; AZURE_CLIENT_SECRET etc. to EnvironmentCredential).
        ``AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential`` pins the chain so a failure never falls
        through to a developer's Azure CLI login. ``REQUESTS_CA_BUNDLE`` makes azure-core (requests)
        trust only the test CA.
        """
        return {
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
            "AZURE_CLIENT_ID": self.app_client_id,
            "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
            "REQUESTS_CA_BUNDLE": str(shared_ca().ca_path),
            "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1,localhost"])),
        }

    def validate_token(self, token: str | None, audience: str) -> str | None:
        """The principal object id the token was issued to, if valid, unexpired and for ``audience``."""
        return self.tokens.validate(token, audience)

    def kube_token_validator(self) -> Callable[[str | None], bool]:
        """For the Kubernetes stand-in's ``token_validator``: accepts only AKS Entra tokens."""
        return lambda token: self.validate_token(token, AKS_AAD_SERVER_APP_ID) is not None

    def issue_token(self, principal_id: str, audience: str = ARM_AUDIENCE, lifetime_seconds: int | None = None) -> str:
        """Mint a token directly (tests acting as another principal)."""
        return self.tokens.issue(principal_id, audience, lifetime_seconds).token

    def register_principal(
        self, object_id: str, *, client_id: str | None = None, principal_type: str = "ServicePrincipal"
    ) -> None:
        """Add a principal to the stand-in's directory (role assignments look principals up here)."""
        self.tokens.add_principal(Principal(object_id, client_id or object_id, principal_type))

    def get(self, resource_id: str) -> dict[str, Any] | None:
        """A deep copy of the stored resource (vnet, subnet, cluster, managed namespace, role assignment, rg,
        provider)."""
        self._advance()
        with self._lock:
            found = self._find(resource_id)
            return copy.deepcopy(found) if found is not None else None

    def _find(self, resource_id: str) -> dict[str, Any] | None:
        k = _key(resource_id)
        for table in (self._vnets, self._clusters, self._managed_namespaces, self._role_assignments):
            if k in table:
                return table[k]
        m = re.fullmatch(r"(?P<vnet>.*/virtualnetworks/[^/]+)/subnets/(?P<name>[^/]+)", k)
        if m:
            vnet = self._vnets.get(m["vnet"])
            return self._subnet_in(vnet, m["name"]) if vnet else None
        m = re.fullmatch(_RG + "$", k)
        if m and m["sub"] == self.subscription_id.lower():
            return self._rgs.get(m["rg"])
        m = re.fullmatch(_S + r"/providers/(?P<ns>[^/]+)", k)
        if m and m["ns"] in self._providers:
            return self._provider_body(m["ns"])
        return None

    # ------------------------------------------------------------------ routes
    def _build_routes(self) -> list[tuple[re.Pattern[str], dict[str, tuple[_Handler, str | None, Any]]]]:
        def parent(path: str, g: dict[str, str]) -> str:
            return path.rsplit("/", 1)[0]

        def sub_scope(path: str, g: dict[str, str]) -> str:
            return f"/subscriptions/{g['sub']}"

        net_vnet = "Microsoft.Network/virtualNetworks"
        aks = "Microsoft.ContainerService/managedClusters"
        ra = "Microsoft.Authorization/roleAssignments"
        table: list[tuple[str, dict[str, tuple[_Handler, str | None, Any]]]] = [
            (
                _RG,
                {
                    "GET": (self._rg_get, "Microsoft.Resources/subscriptions/resourceGroups/read", None),
                    "HEAD": (self._rg_head, "Microsoft.Resources/subscriptions/resourceGroups/read", None),
                },
            ),
            (
                _S + r"/providers/(?P<ns>[^/]+)/locations/(?P<loc>[^/]+)/operations/(?P<op>[^/]+)",
                {"GET": (self._op_status, None, None)},
            ),
            (
                _S + r"/providers/(?P<ns>[^/]+)/locations/(?P<loc>[^/]+)/operationresults/(?P<op>[^/]+)",
                {"GET": (self._op_result, None, None)},
            ),
            (_S + r"/providers/(?P<ns>[^/]+)", {"GET": (self._provider_get, None, None)}),
            (
                _S + r"/providers/(?P<ns>[^/]+)/register",
                {"POST": (self._provider_register, "{ns}/register/action", sub_scope)},
            ),
            (_NET, {"GET": (self._vnet_list, f"{net_vnet}/read", None)}),
            (
                _NET + r"/(?P<vnet>[^/]+)",
                {
                    "GET": (self._vnet_get, f"{net_vnet}/read", None),
                    "PUT": (self._vnet_put, f"{net_vnet}/write", None),
                    "DELETE": (self._vnet_delete, f"{net_vnet}/delete", None),
                },
            ),
            (_NET + r"/(?P<vnet>[^/]+)/subnets", {"GET": (self._subnet_list, f"{net_vnet}/subnets/read", None)}),
            (
                _NET + r"/(?P<vnet>[^/]+)/subnets/(?P<subnet>[^/]+)",
                {
                    "GET": (self._subnet_get, f"{net_vnet}/subnets/read", None),
                    "PUT": (self._subnet_put, f"{net_vnet}/subnets/write", None),
                    "DELETE": (self._subnet_delete, f"{net_vnet}/subnets/delete", None),
                },
            ),
            (_AKS, {"GET": (self._cluster_list, f"{aks}/read", None)}),
            (
                _S + r"/providers/microsoft\.containerservice/managedclusters",
                {"GET": (self._cluster_list, f"{aks}/read", None)},
            ),
            (
                _AKS + r"/(?P<name>[^/]+)",
                {
                    "GET": (self._cluster_get, f"{aks}/read", None),
                    "PUT": (self._cluster_put, f"{aks}/write", None),
                    "DELETE": (self._cluster_delete, f"{aks}/delete", None),
                },
            ),
            (
                _AKS + r"/(?P<name>[^/]+)/managednamespaces",
                {"GET": (self._namespace_list, f"{aks}/managedNamespaces/read", None)},
            ),
            (
                _AKS + r"/(?P<name>[^/]+)/managednamespaces/(?P<mns>[^/]+)",
                {
                    "GET": (self._namespace_get, f"{aks}/managedNamespaces/read", None),
                    "PUT": (self._namespace_put, f"{aks}/managedNamespaces/write", None),
                    "DELETE": (self._namespace_delete, f"{aks}/managedNamespaces/delete", None),
                },
            ),
            (
                _AKS + r"/(?P<name>[^/]+)/stop",
                {"POST": (lambda ctx: self._power_action(ctx, "stop"), f"{aks}/stop/action", parent)},
            ),
            (
                _AKS + r"/(?P<name>[^/]+)/start",
                {"POST": (lambda ctx: self._power_action(ctx, "start"), f"{aks}/start/action", parent)},
            ),
            (
                _AKS + r"/(?P<name>[^/]+)/listclusterusercredential",
                {"POST": (self._cluster_user_credential, f"{aks}/listClusterUserCredential/action", parent)},
            ),
            (
                _AKS + r"/(?P<name>[^/]+)/listclusteradmincredential",
                {"POST": (self._cluster_admin_credential, f"{aks}/listClusterAdminCredential/action", parent)},
            ),
            (_AUTHZ + r"/roleassignments", {"GET": (self._ra_list, f"{ra}/read", None)}),
            (
                _AUTHZ + r"/roleassignments/(?P<ra>[^/]+)",
                {
                    "GET": (self._ra_get, f"{ra}/read", None),
                    "PUT": (self._ra_put, f"{ra}/write", None),
                    "DELETE": (self._ra_delete, f"{ra}/delete", None),
                },
            ),
            (_AUTHZ + r"/roledefinitions", {"GET": (self._rd_list, None, None)}),
            (
                _AUTHZ + r"/roledefinitions/(?P<rd>[^/]+)",
                {
                    "GET": (self._rd_get, None, None),
                    "PUT": (self._rd_put, "Microsoft.Authorization/roleDefinitions/write", None),
                },
            ),
        ]
        return [(re.compile(p), t) for p, t in table]
