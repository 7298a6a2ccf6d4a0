"""An Azure Resource Manager stand-in over real HTTPS on loopback, for the app's real SDK clients.

The app's ``ContainerServiceClient``, ``NetworkManagementClient``, ``AuthorizationManagementClient``
and ``azure.mgmt.resource.resources.ResourceManagementClient`` are built with
``base_url=standin.url`` and ``credential=DefaultAzureCredential()`` and talk to this server
unchanged. Tokens come from the stand-in's managed-identity endpoint (App Service protocol, see
``arm_identity.py``); :meth:`ArmStandIn.credential_env` gives the environment that makes
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
  ``listClusterUserCredential``, ``listClusterAdminCredential``.
* ``.../managedClusters/{name}/managedNamespaces/{ns}`` PUT/GET/DELETE (+ list): an LRO on an
  existing cluster (404 ``ParentResourceNotFound`` while the cluster is absent or not Succeeded,
  409 while an operation runs on it). When a create or update succeeds, ``on_namespace_created(ns)``
  runs before the namespace shows ``Succeeded`` (tests wire it to the Kubernetes stand-in); a
  delete with ``deletePolicy: Delete`` runs ``on_namespace_deleted(ns)``.
* ``{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`` PUT/GET/DELETE and list at
  scope with ``$filter``; ``{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}``.
  A scope must exist; Azure RBAC for Kubernetes' namespace scopes ``{clusterId}/namespaces/{ns}``
  and ``{clusterId}/managedNamespaces/{ns}`` need only the cluster (the namespace may not exist yet).
* LROs: PUT/DELETE answer with ``Azure-AsyncOperation`` + ``Location`` headers pointing at
  ``/subscriptions/{s}/providers/{ns}/locations/{loc}/operations/{id}`` (status document) and
  ``.../operationresults/{id}``. Poll hints use ``retry-after-ms`` (azure-core honours it) so the
  SDK pollers are fast; real ARM sends ``Retry-After`` in whole seconds.

Authorization: every ARM route maps to an operation string (``Microsoft.Network/virtualNetworks/write``
...) checked against :meth:`grant`/:meth:`revoke` rules; failures are the real
``AuthorizationFailed`` 403. Reading providers, role definitions and operation status needs only a
valid token.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import os
import random
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

import yaml

from devtools.standins.arm_catalog import (
    ACI_DELEGATION_SERVICE,
    BUILTIN_ROLES,
    DEFAULT_KUBERNETES_VERSION,
    PROVIDERS,
    ArmError,
    is_guid,
    networks_overlap,
    parse_network,
    role_definition_body,
    stable_guid,
    within,
)
from devtools.standins.arm_identity import (
    AKS_AAD_SERVER_APP_ID,
    IdentityEndpoint,
    Principal,
    TokenRequest,
    TokenStore,
    audience_matches,
)
from devtools.tls import shared_ca

__all__ = [
    "AKS_AAD_SERVER_APP_ID",
    "ARM_AUDIENCE",
    "CREDENTIAL_ENV_CONFLICTS",
    "ArmStandIn",
    "RecordedRequest",
    "TokenRequest",
]

ARM_AUDIENCE = "https://management.azure.com"
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

_ARM_AUDIENCES_MSG = (
    "'https://management.core.windows.net/','https://management.core.windows.net',"
    "'https://management.azure.com/','https://management.azure.com'"
)
_WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})


def _utcnow_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _norm_path(raw: str) -> str:
    segs = [s for s in unquote(raw).split("/") if s]
    return "/" + "/".join(segs)


def _key(resource_id: str) -> str:
    return _norm_path(resource_id).lower()


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$", re.IGNORECASE)


def _scope_under(scope: str, prefix: str) -> bool:
    s, p = _key(scope), _key(prefix)
    return p == "/" or s == p or s.startswith(p + "/")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # normalized: no query, single slashes, percent-decoded
    api_version: str | None
    body: Any  # parsed JSON or None
    status: int
    principal_id: str | None = None
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class _Op:
    id: str
    namespace: str
    location: str
    kind: str  # create / update / delete
    resource_id: str
    done_at: float
    complete: Callable[[], tuple[dict[str, Any] | None, list[Callable[[], None]]]]
    started: str = field(default_factory=_utcnow_iso)
    status: str = "InProgress"
    ended: str | None = None
    finalizing: bool = False
    error: dict[str, Any] | None = None


@dataclass
class _Fault:
    kind: str
    remaining: int
    status: int
    retry_after: float
    regex: re.Pattern[str] | None
    method: str | None
    probability: float
    code: str | None
    message: str | None


@dataclass(frozen=True)
class _Rule:
    principal_id: str
    scope_prefix: str
    pattern: str
    regex: re.Pattern[str]


@dataclass
class _Ctx:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    principal: Principal
    g: dict[str, str]


_Result = tuple[int, dict[str, str], Any]
_Handler = Callable[[_Ctx], _Result]

_S = r"/subscriptions/(?P<sub>[^/]+)"
_RG = _S + r"/resourcegroups/(?P<rg>[^/]+)"
_NET = _RG + r"/providers/microsoft\.network/virtualnetworks"
_AKS = _RG + r"/providers/microsoft\.containerservice/managedclusters"
_AUTHZ = r"(?P<scope>.*)/providers/microsoft\.authorization"
_NAMESPACE_SCOPE = re.compile(
    r"^(.*/providers/microsoft\.containerservice/managedclusters/[^/]+)/(?:managed)?namespaces/[^/]+$"
)
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


class _ArmRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ArmServer

    def setup(self) -> None:
        self.request.settimeout(15)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        self.server.standin._handle_http(self)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _serve


class _ArmServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, standin: ArmStandIn, port: int) -> None:
        super().__init__(("127.0.0.1", port), _ArmRequestHandler)
        self.standin = standin

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


PRIVATE_SUBNETS_FROM = "2025-07-01"
"""Network api-version from which a new subnet is private unless it says otherwise: "Starting
with API version 2025-07-01 ... Subnets in newly created VNets are private by default. The
subnet property ``defaultOutboundAccess`` is set to false" (Azure Networking Blog, "Private
subnets by default in Azure virtual networks", techcommunity.microsoft.com, 2026); existing
subnets are unchanged (same post, "Existing VNets or VMs using DOA: Unchanged")."""


def _default_outbound_access(
    props: dict[str, Any], existing: dict[str, Any] | None, api_version: str | None
) -> bool | None:
    """``defaultOutboundAccess`` of a subnet after a PUT: what the body says; else, for an
    existing subnet, what it had (the docs are silent on a PUT that omits it; keeping the value
    follows "existing VNets unchanged"); else false from :data:`PRIVATE_SUBNETS_FROM`, and
    absent (null: default outbound access) before it."""
    if isinstance(props.get("defaultOutboundAccess"), bool):
        return bool(props["defaultOutboundAccess"])
    if existing is not None:
        kept = existing.get("properties", {}).get("defaultOutboundAccess")
        return kept if isinstance(kept, bool) else None
    if api_version and api_version[:10] >= PRIVATE_SUBNETS_FROM:
        return False
    return None


def subnet_egress(subnet: dict[str, Any]) -> bool:
    """Whether container groups in a subnet reach the internet: default outbound access (not
    false), or an explicit method, a NAT gateway or a route table (a UDR to a firewall; its
    routes are not modelled). Sources: learn.microsoft.com virtual-network/ip-services/
    default-outbound-access ("explicit outbound connectivity" methods); for ACI in a private
    subnet, ../shared/reference/virtual-node.md (egress needs the opt-in or a NAT gateway)."""
    props = subnet.get("properties") or {}
    if props.get("natGateway") or props.get("routeTable"):
        return True
    return props.get("defaultOutboundAccess") is not False


class ArmStandIn:
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
        self.tokens = TokenStore(lifetime_seconds=token_lifetime_seconds)
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
        self._managed_namespaces: dict[str, dict[str, Any]] = {}
        self._namespace_ops: dict[str, str] = {}  # managed namespace key -> op id in progress
        self._ops: dict[str, _Op] = {}
        self._routes = self._build_routes()

        self.grant(app_principal_id, f"/subscriptions/{subscription_id}/resourceGroups/{cluster_resource_group}", ["*"])

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

    # ------------------------------------------------------------------ test helpers
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

    def is_authorized(self, principal_id: str, action: str, scope: str) -> bool:
        with self._lock:
            pid = principal_id.lower()
            for r in self._denies:
                if r.principal_id == pid and r.regex.match(action) and _scope_under(scope, r.scope_prefix):
                    return False
            return any(
                r.principal_id == pid and r.regex.match(action) and _scope_under(scope, r.scope_prefix)
                for r in self._grants
            )

    def throttle(self, count: int, retry_after_seconds: float = 1, path_regex: str | None = None) -> None:
        """The next ``count`` matching ARM requests get 429 + Retry-After (SubscriptionRequestsThrottled)."""
        self._add_fault("throttle", count, 429, retry_after_seconds, path_regex, None, 1.0, None, None)

    def fail(
        self,
        count: int,
        status: int = 500,
        path_regex: str | None = None,
        method: str | None = None,
        *,
        probability: float = 1.0,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """The next ``count`` matching ARM requests fail with ``status`` (seeded ``probability``)."""
        self._add_fault("fail", count, status, 0, path_regex, method, probability, code, message)

    def _add_fault(
        self,
        kind: str,
        count: int,
        status: int,
        retry_after: float,
        path_regex: str | None,
        method: str | None,
        probability: float,
        code: str | None,
        message: str | None,
    ) -> None:
        rx = re.compile(path_regex, re.IGNORECASE) if path_regex else None
        with self._lock:
            self._faults.append(
                _Fault(
                    kind, count, status, retry_after, rx, method.upper() if method else None, probability, code, message
                )
            )

    def write_requests(self) -> list[RecordedRequest]:
        """PUT/POST/PATCH/DELETE requests, excluding credential-list POSTs (``list*`` actions).

        Token calls go to the identity endpoint and are never in ``requests`` (see ``token_requests``).
        """
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method in _WRITE_METHODS
                and not (r.method == "POST" and r.path.rsplit("/", 1)[-1].startswith("list"))
            ]

    def reset_records(self) -> None:
        with self._lock:
            self.requests.clear()
        with self._identity._lock:
            self._identity.requests.clear()

    def get(self, resource_id: str) -> dict[str, Any] | None:
        """A deep copy of the stored resource (vnet, subnet, cluster, managed namespace, role assignment, rg,
        provider)."""
        self._advance()
        with self._lock:
            found = self._find(resource_id)
            return copy.deepcopy(found) if found is not None else None

    def has_egress(self, subnet_id: str) -> bool:
        """Whether container groups placed in this subnet would reach the internet (:func:`subnet_egress`)."""
        found = self.get(subnet_id)
        return found is not None and subnet_egress(found)

    def role_assignments(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._role_assignments.values()))

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

    # ------------------------------------------------------------------ LRO clock
    def _new_op(
        self,
        namespace: str,
        kind: str,
        resource_id: str,
        seconds: float,
        complete: Callable[[], tuple[dict[str, Any] | None, list[Callable[[], None]]]],
    ) -> _Op:
        op = _Op(
            id=str(uuid.uuid4()),
            namespace=namespace,
            location=self.location,
            kind=kind,
            resource_id=resource_id,
            done_at=time.monotonic() + max(0.0, seconds),
            complete=complete,
        )
        self._ops[op.id] = op
        return op

    def _advance(self) -> None:
        """Finish due LROs. Hooks run outside the lock, before the operation reports its final status,
        so a poller that sees ``Succeeded`` knows ``on_virtual_node_enabled`` has already run."""
        finished: list[tuple[_Op, dict[str, Any] | None, list[Callable[[], None]]]] = []
        now = time.monotonic()
        with self._lock:
            for p in self._providers.values():
                if p["state"] == "Registering" and p["ready_at"] is not None and now >= p["ready_at"]:
                    p["state"] = "Registered"
            due = sorted(
                (o for o in self._ops.values() if o.status == "InProgress" and not o.finalizing and o.done_at <= now),
                key=lambda o: o.done_at,
            )
            for op in due:
                op.finalizing = True
                try:
                    error, op_hooks = op.complete()
                except ArmError as exc:
                    error, op_hooks = exc.body()["error"], []
                finished.append((op, error, op_hooks))
        for _, _, op_hooks in finished:
            for hook in op_hooks:
                try:
                    hook()
                except BaseException as exc:  # recorded for assertions, never breaks the server
                    self.hook_errors.append(exc)
        if finished:
            with self._lock:
                for op, error, _ in finished:
                    op.status = "Failed" if error else "Succeeded"
                    op.error = error
                    op.ended = _utcnow_iso()

    def _lro_headers(self, op: _Op, api_version: str | None) -> dict[str, str]:
        base = f"{self.url}/subscriptions/{self.subscription_id}/providers/{op.namespace}/locations/{op.location}"
        q = f"?api-version={api_version or '2017-08-31'}"
        return {
            "Azure-AsyncOperation": f"{base}/operations/{op.id}{q}",
            "Location": f"{base}/operationresults/{op.id}{q}",
            "retry-after-ms": str(self.poll_interval_ms),
        }

    # ------------------------------------------------------------------ HTTP
    def _handle_http(self, h: _ArmRequestHandler) -> None:
        raw_path, _, query = h.path.partition("?")
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        method = h.command.upper()
        path = _norm_path(raw_path)
        body: Any = None
        principal_id: str | None = None
        try:
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise ArmError(
                        400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
                    ) from None
            self._advance()
            principal = self._authenticate(h.headers.get("Authorization"))
            principal_id = principal.object_id
            status, headers, payload = self._dispatch(method, path, params, body, principal)
        except ArmError as exc:
            status, headers, payload = exc.status, dict(exc.headers), exc.body()
        except Exception as exc:  # a stand-in bug: surface it as ARM would, with detail
            status, headers, payload = 500, {}, {"error": {"code": "InternalServerError", "message": repr(exc)}}
        with self._lock:
            self.requests.append(
                RecordedRequest(method, path, params.get("api-version"), body, status, principal_id, params)
            )
        data = b"" if payload is None else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("x-ms-request-id", str(uuid.uuid4()))
        h.send_header("x-ms-correlation-request-id", h.headers.get("x-ms-client-request-id") or str(uuid.uuid4()))
        for k, v in headers.items():
            h.send_header(k, v)
        if payload is not None:
            h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if method != "HEAD":
            h.wfile.write(data)

    def _authenticate(self, header: str | None) -> Principal:
        def fail(code: str, message: str) -> ArmError:
            challenge = (
                f'Bearer authorization_uri="https://login.microsoftonline.com/{self.tenant_id}", '
                f'error="invalid_token", error_description="{message}"'
            )
            return ArmError(401, code, message, {"WWW-Authenticate": challenge})

        if not header:
            raise fail("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise fail(
                "AuthenticationFailedInvalidHeader",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            )
        tok = self.tokens.lookup(token.strip())
        if tok is None:
            raise fail("InvalidAuthenticationToken", "The access token is invalid.")
        if tok.expires_on <= time.time():
            exp = datetime.fromtimestamp(tok.expires_on, UTC).strftime("%m/%d/%Y %H:%M:%S")
            now = datetime.now(UTC).strftime("%m/%d/%Y %H:%M:%S")
            raise fail(
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{exp}' is earlier than current UTC time '{now}'.",
            )
        if not audience_matches(tok.audience, ARM_AUDIENCE):
            raise fail(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource '{tok.audience}'. It should "
                f"exactly match with one of the allowed audiences {_ARM_AUDIENCES_MSG}.",
            )
        p = self.tokens.principal(tok.principal_id)
        return p or Principal(tok.principal_id, tok.client_id)

    def _dispatch(self, method: str, path: str, params: dict[str, str], body: Any, principal: Principal) -> _Result:
        if "api-version" not in params:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        self._maybe_fault(method, path, principal)
        lowered = path.lower()
        for rx, table in self._routes:
            m = rx.fullmatch(lowered)
            if m is None:
                continue
            if method not in table:
                raise ArmError(405, "MethodNotAllowed", f"The HTTP method '{method}' is not supported at '{path}'.")
            fn, action, scope_of = table[method]
            g = self._original_groups(rx, path, m)
            if "sub" in g and g["sub"].lower() != self.subscription_id.lower():
                raise ArmError(404, "SubscriptionNotFound", f"The subscription '{g['sub']}' could not be found.")
            if action is not None:
                scope = scope_of(path, g) if scope_of else path
                self._authorize(principal, action.format(**g), scope)
            return fn(_Ctx(method, path, params, body, principal, g))
        raise ArmError(404, "NotFound", f"The ARM stand-in does not model '{method} {path}'.")

    @staticmethod
    def _original_groups(rx: re.Pattern[str], path: str, m: re.Match[str]) -> dict[str, str]:
        # the regexes match the lowered path; take group values from the original (same offsets)
        return {k: path[m.start(k) : m.end(k)] for k in rx.groupindex if m.group(k) is not None}

    def _authorize(self, principal: Principal, action: str, scope: str) -> None:
        if not self.is_authorized(principal.object_id, action, scope):
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client '{principal.client_id}' with object id '{principal.object_id}' does not have "
                f"authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. "
                "If access was recently granted, please refresh your credentials.",
            )

    def _maybe_fault(self, method: str, path: str, principal: Principal) -> None:
        with self._lock:
            for f in self._faults:
                if f.remaining <= 0 or (f.method and f.method != method) or (f.regex and not f.regex.search(path)):
                    continue
                if f.probability < 1.0 and self._rand.random() >= f.probability:
                    continue
                f.remaining -= 1
                if f.kind == "throttle":
                    ra = f.retry_after
                    ra_text = str(int(ra)) if float(ra).is_integer() else str(ra)
                    kind = "write" if method in _WRITE_METHODS else "read"
                    raise ArmError(
                        429,
                        f.code or "SubscriptionRequestsThrottled",
                        f.message
                        or f"Number of '{kind}' requests for subscription '{self.subscription_id}' actor "
                        f"'{principal.object_id}' exceeded. Please try again after '{ra_text}' seconds after "
                        "additional tokens are available. Refer to https://aka.ms/arm-throttling",
                        {"Retry-After": ra_text, f"x-ms-ratelimit-remaining-subscription-{kind}s": "0"},
                    )
                codes = {
                    500: "InternalServerError",
                    502: "BadGateway",
                    503: "ServiceUnavailable",
                    504: "GatewayTimeout",
                }
                raise ArmError(
                    f.status,
                    f.code or codes.get(f.status, "InjectedFault"),
                    f.message or f"Injected fault ({f.status}) from the ARM stand-in.",
                )

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
            (_AUTHZ + r"/roledefinitions/(?P<rd>[^/]+)", {"GET": (self._rd_get, None, None)}),
        ]
        return [(re.compile(p), t) for p, t in table]

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

    # ------------------------------------------------------------------ operations
    def _op(self, ctx: _Ctx) -> _Op:
        op = self._ops.get(ctx.g["op"])
        if op is None or op.namespace.lower() != ctx.g["ns"].lower():
            raise ArmError(404, "NotFound", f"Operation {ctx.g['op']} was not found.")
        return op

    def _op_status(self, ctx: _Ctx) -> _Result:
        with self._lock:
            op = self._op(ctx)
            body: dict[str, Any] = {
                "id": ctx.path,
                "name": op.id,
                "status": op.status,
                "startTime": op.started,
            }
            if op.ended:
                body["endTime"] = op.ended
            if op.error:
                body["error"] = op.error
            headers = {"retry-after-ms": str(self.poll_interval_ms)} if op.status == "InProgress" else {}
            return 200, headers, body

    def _op_result(self, ctx: _Ctx) -> _Result:
        with self._lock:
            op = self._op(ctx)
            if op.status == "InProgress":
                return (
                    202,
                    {
                        "Location": f"{self.url}{ctx.path}?api-version={ctx.params.get('api-version')}",
                        "retry-after-ms": str(self.poll_interval_ms),
                    },
                    None,
                )
            if op.error:
                raise ArmError(400, op.error.get("code", "OperationFailed"), op.error.get("message", ""))
            found = self._find(op.resource_id)
            return (200, {}, copy.deepcopy(found)) if found is not None and op.kind != "delete" else (204, {}, None)

    # ------------------------------------------------------------------ network
    def _vnet_id(self, g: dict[str, str]) -> str:
        rg = self._rg(g["rg"])
        return f"{rg['id']}/providers/Microsoft.Network/virtualNetworks/{g['vnet']}"

    def _vnet(self, g: dict[str, str]) -> dict[str, Any]:
        vid = self._vnet_id(g)
        v = self._vnets.get(_key(vid))
        if v is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Network/virtualNetworks/{g['vnet']}' under resource group '{g['rg']}' "
                "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        return v

    @staticmethod
    def _subnet_in(vnet: dict[str, Any], name: str) -> dict[str, Any] | None:
        subnets: list[dict[str, Any]] = vnet["properties"]["subnets"]
        for s in subnets:
            if s["name"].lower() == name.lower():
                return s  # the live dict (callers mutate it under the lock)
        return None

    def _subnet_users(self, subnet_id: str) -> list[str]:
        """Ids of things using a subnet (AKS agent pools, the ACI connector's service association link)."""
        users = []
        for c in self._clusters.values():
            for pool in c["properties"].get("agentPoolProfiles") or []:
                if pool.get("vnetSubnetID") and _key(pool["vnetSubnetID"]) == _key(subnet_id):
                    users.append(f"{c['id']}/agentPools/{pool.get('name')}")
        s = self._find(subnet_id)
        if s:
            users.extend(link["id"] for link in s["properties"].get("serviceAssociationLinks") or [])
        return users

    def _delegations(self, subnet_id: str, raw: Any) -> list[dict[str, Any]]:
        out = []
        for i, d in enumerate(raw or []):
            props = (d or {}).get("properties") or {}
            service = props.get("serviceName")
            name = (d or {}).get("name") or f"delegation{i}"
            if not service:
                raise ArmError(
                    400, "InvalidRequestFormat", f"Delegation {name} of subnet {subnet_id} has no serviceName."
                )
            out.append(
                {
                    "name": name,
                    "id": f"{subnet_id}/delegations/{name}",
                    "etag": f'W/"{uuid.uuid4()}"',
                    "type": "Microsoft.Network/virtualNetworks/subnets/delegations",
                    "properties": {
                        "serviceName": service,
                        "actions": ["Microsoft.Network/virtualNetworks/subnets/action"],
                        "provisioningState": "Succeeded",
                    },
                }
            )
        return out

    def _build_subnet(
        self, vnet_id: str, raw: Any, existing: dict[str, Any] | None, state: str, api_version: str | None = None
    ) -> tuple[dict[str, Any], ipaddress.IPv4Network | ipaddress.IPv6Network]:
        if not isinstance(raw, dict) or not raw.get("name"):
            raise ArmError(400, "InvalidRequestFormat", f"A subnet of {vnet_id} has no name.")
        name = raw["name"]
        sid = f"{vnet_id}/subnets/{name}"
        props = raw.get("properties") or {}
        prefix = props.get("addressPrefix") or (props.get("addressPrefixes") or [None])[0]
        if prefix is None:
            raise ArmError(
                400,
                "SubnetMissingAddressPrefix",
                f"Subnet {name} in virtual network {vnet_id.rsplit('/', 1)[-1]} has no address prefix.",
            )
        net = parse_network(prefix, resource=sid)
        delegations = self._delegations(sid, props.get("delegations"))
        sals = (existing or {}).get("properties", {}).get("serviceAssociationLinks") or []
        if existing is not None:
            users = self._subnet_users(sid)
            if users and existing["properties"]["addressPrefix"] != str(net):
                raise ArmError(
                    400,
                    "InUseSubnetCannotBeUpdated",
                    f"Subnet {name} is in use and cannot be updated (address prefix change). Used by: {', '.join(users)}.",
                )
            if sals and not any(d["properties"]["serviceName"] == ACI_DELEGATION_SERVICE for d in delegations):
                raise ArmError(
                    400,
                    "SubnetMissingRequiredDelegation",
                    f"Subnet {sid} requires any of the following delegation(s) [{ACI_DELEGATION_SERVICE}] to "
                    f"reference service association link {sals[0]['id']}.",
                )
        subnet: dict[str, Any] = {
            "id": sid,
            "name": name,
            "etag": f'W/"{uuid.uuid4()}"',
            "type": "Microsoft.Network/virtualNetworks/subnets",
            "properties": {
                "provisioningState": state,
                "addressPrefix": str(net),
                "delegations": delegations,
                "privateEndpointNetworkPolicies": props.get("privateEndpointNetworkPolicies", "Disabled"),
                "privateLinkServiceNetworkPolicies": props.get("privateLinkServiceNetworkPolicies", "Enabled"),
            },
        }
        outbound = _default_outbound_access(props, existing, api_version)
        if outbound is not None:
            subnet["properties"]["defaultOutboundAccess"] = outbound
        if sals:
            subnet["properties"]["serviceAssociationLinks"] = sals
        for passthrough in ("routeTable", "networkSecurityGroup", "natGateway", "serviceEndpoints"):
            if props.get(passthrough) is not None:
                subnet["properties"][passthrough] = props[passthrough]
        return subnet, net

    @staticmethod
    def _check_subnet_layout(
        vnet_name: str,
        space: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
        subnets: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]],
    ) -> None:
        for i, (name, net) in enumerate(subnets):
            if not any(within(net, s) for s in space):
                raise ArmError(
                    400,
                    "NetcfgInvalidSubnet",
                    f"Subnet '{name}' is not valid in virtual network '{vnet_name}'.",
                )
            for other_name, other in subnets[:i]:
                if networks_overlap(net, other):
                    raise ArmError(
                        400,
                        "NetcfgSubnetRangesOverlap",
                        f"Subnet '{name}' is not valid because its IP address range overlaps with that of an "
                        f"existing subnet '{other_name}' in virtual network '{vnet_name}'.",
                    )

    def _finish_network(self, key: str, subnet_name: str | None) -> Callable[[], tuple[None, list[Callable[[], None]]]]:
        def complete() -> tuple[None, list[Callable[[], None]]]:
            v = self._vnets.get(key)
            if v is not None:
                if subnet_name is None:
                    v["properties"]["provisioningState"] = "Succeeded"
                    for s in v["properties"]["subnets"]:
                        s["properties"]["provisioningState"] = "Succeeded"
                else:
                    s = self._subnet_in(v, subnet_name)
                    if s is not None:
                        s["properties"]["provisioningState"] = "Succeeded"
            return None, []

        return complete

    def _vnet_list(self, ctx: _Ctx) -> _Result:
        with self._lock:
            prefix = _key(self._rg(ctx.g["rg"])["id"]) + "/"
            return 200, {}, {"value": [copy.deepcopy(v) for k, v in self._vnets.items() if k.startswith(prefix)]}

    def _vnet_get(self, ctx: _Ctx) -> _Result:
        with self._lock:
            return 200, {}, copy.deepcopy(self._vnet(ctx.g))

    def _vnet_put(self, ctx: _Ctx) -> _Result:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        with self._lock:
            vid = self._vnet_id(ctx.g)
            key = _key(vid)
            existing = self._vnets.get(key)
            name = existing["name"] if existing else ctx.g["vnet"]
            vid = existing["id"] if existing else vid
            location = body.get("location")
            if not location:
                raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
            props = body.get("properties") or {}
            raw_space = (props.get("addressSpace") or {}).get("addressPrefixes") or []
            if not raw_space:
                raise ArmError(400, "InvalidAddressSpace", f"Virtual network {name} must have an address space.")
            space = [parse_network(p, resource=vid) for p in raw_space]
            state = "Updating"
            new_subnets: list[dict[str, Any]] = []
            layout: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
            seen: set[str] = set()
            for raw in props.get("subnets") or []:  # absent == empty list: ARM deletes existing subnets
                old = self._subnet_in(existing, raw.get("name", "")) if existing and isinstance(raw, dict) else None
                subnet, net = self._build_subnet(vid, raw, old, state, ctx.params.get("api-version"))
                if subnet["name"].lower() in seen:
                    raise ArmError(400, "InvalidRequestFormat", f"Subnet {subnet['name']} appears twice.")
                seen.add(subnet["name"].lower())
                new_subnets.append(subnet)
                layout.append((subnet["name"], net))
            self._check_subnet_layout(name, space, layout)
            if existing:
                for old in existing["properties"]["subnets"]:
                    if old["name"].lower() not in seen:
                        users = self._subnet_users(old["id"])
                        if users:
                            raise ArmError(
                                400,
                                "InUseSubnetCannotBeDeleted",
                                f"Subnet {old['name']} is in use by {users[0]} and cannot be deleted. In order to "
                                "delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                            )
            vnet = {
                "id": vid,
                "name": name,
                "type": "Microsoft.Network/virtualNetworks",
                "location": location,
                "etag": f'W/"{uuid.uuid4()}"',
                "properties": {
                    "provisioningState": state,
                    "resourceGuid": existing["properties"]["resourceGuid"] if existing else str(uuid.uuid4()),
                    "addressSpace": {"addressPrefixes": [str(s) for s in space]},
                    "subnets": new_subnets,
                    "virtualNetworkPeerings": [],
                    "enableDdosProtection": bool(props.get("enableDdosProtection", False)),
                },
            }
            if body.get("tags") is not None:
                vnet["tags"] = body["tags"]
            self._vnets[key] = vnet
            op = self._new_op(
                "Microsoft.Network",
                "update" if existing else "create",
                vid,
                self.network_seconds,
                self._finish_network(key, None),
            )
            return (200 if existing else 201), self._lro_headers(op, ctx.params.get("api-version")), copy.deepcopy(vnet)

    def _vnet_delete(self, ctx: _Ctx) -> _Result:
        with self._lock:
            key = _key(self._vnet_id(ctx.g))
            vnet = self._vnets.get(key)
            if vnet is None:
                return 204, {}, None
            for s in vnet["properties"]["subnets"]:
                users = self._subnet_users(s["id"])
                if users:
                    raise ArmError(
                        400,
                        "InUseSubnetCannotBeDeleted",
                        f"Subnet {s['name']} is in use by {users[0]} and cannot be deleted. In order to delete the "
                        "subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                    )
            vnet["properties"]["provisioningState"] = "Deleting"

            def complete() -> tuple[None, list[Callable[[], None]]]:
                self._vnets.pop(key, None)
                return None, []

            op = self._new_op("Microsoft.Network", "delete", vnet["id"], self.network_seconds, complete)
            return 202, self._lro_headers(op, ctx.params.get("api-version")), None

    def _subnet_list(self, ctx: _Ctx) -> _Result:
        with self._lock:
            return 200, {}, {"value": copy.deepcopy(self._vnet(ctx.g)["properties"]["subnets"])}

    def _subnet_get(self, ctx: _Ctx) -> _Result:
        with self._lock:
            vnet = self._vnet(ctx.g)
            s = self._subnet_in(vnet, ctx.g["subnet"])
            if s is None:
                raise ArmError(404, "NotFound", f"Resource {vnet['id']}/subnets/{ctx.g['subnet']} not found.")
            return 200, {}, copy.deepcopy(s)

    def _subnet_put(self, ctx: _Ctx) -> _Result:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        with self._lock:
            vnet = self._vnet(ctx.g)
            old = self._subnet_in(vnet, ctx.g["subnet"])
            raw = dict(body)
            raw["name"] = old["name"] if old else ctx.g["subnet"]
            subnet, net = self._build_subnet(vnet["id"], raw, old, "Updating", ctx.params.get("api-version"))
            space = [ipaddress.ip_network(p) for p in vnet["properties"]["addressSpace"]["addressPrefixes"]]
            others = [
                (s["name"], ipaddress.ip_network(s["properties"]["addressPrefix"]))
                for s in vnet["properties"]["subnets"]
                if s["name"].lower() != subnet["name"].lower()
            ]
            self._check_subnet_layout(vnet["name"], space, [*others, (subnet["name"], net)])
            subs = vnet["properties"]["subnets"]
            if old is not None:
                subs[subs.index(old)] = subnet
            else:
                subs.append(subnet)
            op = self._new_op(
                "Microsoft.Network",
                "update" if old else "create",
                subnet["id"],
                self.network_seconds,
                self._finish_network(_key(vnet["id"]), subnet["name"]),
            )
            return (200 if old else 201), self._lro_headers(op, ctx.params.get("api-version")), copy.deepcopy(subnet)

    def _subnet_delete(self, ctx: _Ctx) -> _Result:
        with self._lock:
            vnet = self._vnet(ctx.g)
            s = self._subnet_in(vnet, ctx.g["subnet"])
            if s is None:
                return 204, {}, None
            users = self._subnet_users(s["id"])
            if users:
                raise ArmError(
                    400,
                    "InUseSubnetCannotBeDeleted",
                    f"Subnet {s['name']} is in use by {users[0]} and cannot be deleted. In order to delete the "
                    "subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                )
            vnet["properties"]["subnets"].remove(s)
            op = self._new_op("Microsoft.Network", "delete", s["id"], self.network_seconds, lambda: (None, []))
            return 202, self._lro_headers(op, ctx.params.get("api-version")), None

    # ------------------------------------------------------------------ managed clusters
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

    # ------------------------------------------------------------------ managed namespaces
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

    # ------------------------------------------------------------------ authorization
    def _check_scope_exists(self, scope: str) -> None:
        k = _key(scope)
        # Azure RBAC for Kubernetes grants per namespace at {clusterId}/namespaces/{ns} (or, for
        # AKS managed namespaces, {clusterId}/managedNamespaces/{ns}): ARM accepts these for an
        # existing cluster, whether the namespace exists yet or not.
        namespace_scope = _NAMESPACE_SCOPE.match(k)
        if namespace_scope is not None:
            k = namespace_scope.group(1)
        m = re.match(_S + r"(?:/resourcegroups/(?P<rg>[^/]+))?(?P<rest>/providers/.*)?$", k)
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
            if guid not in BUILTIN_ROLES:
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

    def _rd_get(self, ctx: _Ctx) -> _Result:
        guid = ctx.g["rd"].lower()
        if guid not in BUILTIN_ROLES:
            raise ArmError(
                404, "RoleDefinitionDoesNotExist", f"The specified role definition with ID '{guid}' does not exist."
            )
        return 200, {}, role_definition_body(self.subscription_id, guid)

    def _rd_list(self, ctx: _Ctx) -> _Result:
        flt = ctx.params.get("$filter", "")
        m = re.search(r"(?i)roleName\s+eq\s+'([^']+)'", flt)
        out = [
            role_definition_body(self.subscription_id, g)
            for g, (name, _) in BUILTIN_ROLES.items()
            if m is None or name.lower() == m.group(1).lower()
        ]
        return 200, {}, {"value": out}
