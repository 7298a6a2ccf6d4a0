"""ARM adapter: the only module that imports ``azure.mgmt.*`` and ``azure.identity``.

The bootstrap imports it lazily; ``function_app`` never does (a test checks it): the queue
trigger's cold start should not pay ~0.5 s and 60+ MB for clients that are needed only while
the cluster is being built.

Every method speaks ARM REST JSON (``dict``), which is what the pure ``shared.cluster.plan.steps``
decides on; SDK exceptions become :class:`ArmCallFailed` carrying an ``ArmFault`` (status, ARM
error code, message, Retry-After), and a 404 on a GET is ``None``.

Two SDK defaults are changed on purpose:

- Long-running PUTs are sent with ``polling=False``. The PUT is the whole action: ARM answers
  201/200 at once and the resource shows ``provisioningState`` Creating/Updating until done.
  Later invocations observe that with a GET. A default ``LROPoller`` would start a thread
  polling for the minutes a cluster takes, inside a Functions worker.
- Retries are bounded (:class:`BoundedRetry`): two quick retries for connection errors and
  5xx, and a 429 is retried only when its Retry-After is short. A longer one comes back as a
  fault, the gate answers "not ready (throttled)" and the request is deferred: an invocation
  never sleeps on ARM's behalf.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.policies import RetryPolicy

from shared.base.errors import ArmFault, VnbError

_CLOUD_ARM_HOSTS = frozenset({"management.azure.com", "management.chinacloudapi.cn", "management.usgovcloudapi.net"})
_PUBLIC_ARM_SCOPE = "https://management.azure.com/.default"
TOKEN_REFRESH_MARGIN_SECONDS = 300.0
"""Fetch a new Kubernetes token when the cached one has less than this left (5 minutes, like
azure-identity's own refresh window), so no request ever carries a token about to expire."""


class ArmCallFailed(VnbError):
    """An ARM call failed. ``fault`` says how; ``shared.cluster.plan.steps.classify`` says what it means."""

    def __init__(self, what: str, fault: ArmFault) -> None:
        super().__init__(
            f"ARM {what} failed: {fault.status or 'no answer'} {fault.code or ''}: {fault.message}",
            status=fault.status,
            reason=fault.code,
        )
        self.fault = fault
        self.retryable = fault.status is None or fault.status in (408, 409, 429) or fault.status >= 500


def arm_scope(endpoint: str) -> str:
    """Token scope for an ARM endpoint.

    For the Azure clouds the audience is the endpoint itself (``<endpoint>/.default``). Any other
    endpoint (a loopback stand-in, a proxy in front of public ARM) gets the public-cloud
    audience, which is what such endpoints forward to or emulate.
    """
    host = (urlparse(endpoint).hostname or "").lower()
    if host in _CLOUD_ARM_HOSTS:
        return f"https://{host}/.default"
    return _PUBLIC_ARM_SCOPE


class BoundedRetry(RetryPolicy):  # type: ignore[type-arg]  # generic only for the type checker
    """azure-core's retry policy with a ceiling on how long one call may sleep for Retry-After."""

    def __init__(self, *, max_retry_after: float, **kwargs: Any) -> None:
        kwargs.setdefault("retry_total", 2)
        kwargs.setdefault("retry_backoff_factor", 0.2)
        kwargs.setdefault("retry_backoff_max", 2)
        kwargs.setdefault("timeout", 60)
        super().__init__(**kwargs)
        self.max_retry_after = max_retry_after

    def is_retry(self, settings: Any, response: Any) -> bool:
        after = self.get_retry_after(response)
        if after is not None and after > self.max_retry_after:
            return False
        return bool(super().is_retry(settings, response))


class KubeToken:
    """Bearer tokens for the AKS Kubernetes API (Entra ID), cached until 5 minutes before expiry.

    ``shared.adapters.kube.from_token`` calls this before every request; the lock-free fast
    path returns the cached string, so the identity endpoint is asked only when a token is due.
    """

    def __init__(self, credential: TokenCredential, *, clock: Callable[[], float] = time.time) -> None:
        self._credential = credential
        self._clock = clock
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self.fetches = 0

    def __call__(self) -> str:
        token = self._token
        if token is None or token.expires_on - self._clock() < TOKEN_REFRESH_MARGIN_SECONDS:
            with self._lock:
                token = self._token
                if token is None or token.expires_on - self._clock() < TOKEN_REFRESH_MARGIN_SECONDS:
                    token = self._credential.get_token(AKS_ENTRA_SCOPE)
                    self._token = token
                    self.fetches += 1
        return token.token


def _fault(e: AzureError) -> ArmFault:
    if isinstance(e, HttpResponseError) and e.response is not None:
        error = e.error
        code = getattr(error, "code", None) if error is not None else None
        message = (getattr(error, "message", None) if error is not None else None) or e.message or str(e)
        retry_after: float | None = None
        headers = getattr(e.response, "headers", None) or {}
        raw = headers.get("Retry-After")
        if raw:
            try:
                retry_after = float(raw)
            except ValueError:
                retry_after = None
        return ArmFault(e.status_code, code, str(message), retry_after)
    if isinstance(e, ClientAuthenticationError):  # the credential itself failed: no HTTP answer from ARM
        return ArmFault(None, "CredentialUnavailable", str(e.message or e))
    return ArmFault(None, type(e).__name__, str(e.message or e))


class ArmAdapter:
    """The ARM calls the bootstrap makes, on lazily created, cached SDK clients.

    One per gate (i.e. per process and settings). The credential is DefaultAzureCredential:
    in Azure the Function App's managed identity (``AZURE_CLIENT_ID`` selects a user-assigned
    one), locally whatever ``az login`` or the environment provides; never a secret in settings.
    """

    def __init__(self, *, subscription_id: str, endpoint: str, max_retry_after: float = 2.0) -> None:
        self.subscription_id = subscription_id
        self.endpoint = endpoint.rstrip("/")
        self.max_retry_after = max_retry_after
        self._lock = threading.Lock()
        self._credential: TokenCredential | None = None
        self._kube_token: KubeToken | None = None
        self._clients: dict[str, Any] = {}

    # --- construction ---------------------------------------------------------------------
    @property
    def credential(self) -> TokenCredential:
        with self._lock:
            if self._credential is None:
                from azure.identity import DefaultAzureCredential

                client_id = os.environ.get("AZURE_CLIENT_ID") or None
                self._credential = (
                    DefaultAzureCredential(managed_identity_client_id=client_id)
                    if client_id
                    else DefaultAzureCredential()
                )
            return self._credential

    @property
    def kube_token(self) -> KubeToken:
        """The token source for the cluster's Kubernetes API (same identity as for ARM)."""
        credential = self.credential
        with self._lock:
            if self._kube_token is None:
                self._kube_token = KubeToken(credential)
            return self._kube_token

    def _client(self, kind: str) -> Any:
        credential = self.credential
        with self._lock:
            client = self._clients.get(kind)
            if client is None:
                client = self._clients[kind] = self._build(kind, credential)
            return client

    def _build(self, kind: str, credential: TokenCredential) -> Any:
        options: dict[str, Any] = {
            "base_url": self.endpoint,
            "credential_scopes": [arm_scope(self.endpoint)],
            "retry_policy": BoundedRetry(max_retry_after=self.max_retry_after),
            "connection_timeout": 10,
            "read_timeout": 60,
        }
        if kind == "resource":
            from azure.mgmt.resource.resources import ResourceManagementClient

            return ResourceManagementClient(credential, self.subscription_id, **options)
        if kind == "network":
            from azure.mgmt.network import NetworkManagementClient

            return NetworkManagementClient(credential, self.subscription_id, **options)
        if kind == "aks":
            from azure.mgmt.containerservice import ContainerServiceClient

            return ContainerServiceClient(credential, self.subscription_id, **options)
        if kind == "authorization":
            from azure.mgmt.authorization import AuthorizationManagementClient

            return AuthorizationManagementClient(credential, self.subscription_id, **options)
        raise ValueError(kind)

    def _call(self, what: str, fn: Callable[[], Any], *, none_on_404: bool = False) -> Any:
        try:
            return fn()
        except ResourceNotFoundError as e:
            fault = _fault(e)
            # A missing resource group is not "the resource does not exist yet": creating it
            # is infra/'s job, and creating into it would fail anyway.
            if none_on_404 and fault.code not in ("ResourceGroupNotFound", "SubscriptionNotFound"):
                return None
            raise ArmCallFailed(what, fault) from e
        except AzureError as e:
            raise ArmCallFailed(what, _fault(e)) from e

    # --- resource groups and providers ------------------------------------------------------
    def resource_group_location(self, resource_group: str) -> str:
        group = self._call(
            f"GET resource group {resource_group}",
            lambda: self._client("resource").resource_groups.get(resource_group),
        )
        return str(group.location)

    def provider_state(self, namespace: str) -> str | None:
        provider = self._call(
            f"GET provider {namespace}", lambda: self._client("resource").providers.get(namespace), none_on_404=True
        )
        return None if provider is None else (provider.registration_state or None)

    def register_provider(self, namespace: str) -> str | None:
        provider = self._call(
            f"POST register provider {namespace}", lambda: self._client("resource").providers.register(namespace)
        )
        return provider.registration_state or None

    # --- network ---------------------------------------------------------------------------
    def get_vnet(self, resource_group: str, name: str) -> dict[str, Any] | None:
        vnet = self._call(
            f"GET vnet {name}",
            lambda: self._client("network").virtual_networks.get(resource_group, name),
            none_on_404=True,
        )
        return None if vnet is None else dict(vnet.as_dict())

    def put_vnet(self, resource_group: str, name: str, body: dict[str, Any]) -> None:
        from azure.mgmt.network import models

        self._call(
            f"PUT vnet {name}",
            lambda: self._client("network").virtual_networks.begin_create_or_update(
                resource_group, name, models.VirtualNetwork(body), polling=False
            ),
        )

    def put_subnet(self, resource_group: str, vnet: str, name: str, body: dict[str, Any]) -> None:
        from azure.mgmt.network import models

        self._call(
            f"PUT subnet {vnet}/{name}",
            lambda: self._client("network").subnets.begin_create_or_update(
                resource_group, vnet, name, models.Subnet(body), polling=False
            ),
        )

    # --- managed cluster --------------------------------------------------------------------
    def get_cluster(self, resource_group: str, name: str) -> dict[str, Any] | None:
        cluster = self._call(
            f"GET managed cluster {name}",
            lambda: self._client("aks").managed_clusters.get(resource_group, name),
            none_on_404=True,
        )
        return None if cluster is None else dict(cluster.as_dict())

    def put_cluster(self, resource_group: str, name: str, body: dict[str, Any]) -> None:
        from azure.mgmt.containerservice import models

        # The model drops read-only fields (provisioningState, identity.principalId, ...) of an
        # observed body on the way out, as az CLI's GET-modify-PUT does.
        self._call(
            f"PUT managed cluster {name}",
            lambda: self._client("aks").managed_clusters.begin_create_or_update(
                resource_group, name, models.ManagedCluster(body), polling=False
            ),
        )

    def get_managed_namespace(self, resource_group: str, cluster: str, name: str) -> dict[str, Any] | None:
        namespace = self._call(
            f"GET managed namespace {cluster}/{name}",
            lambda: self._client("aks").managed_namespaces.get(resource_group, cluster, name),
            none_on_404=True,
        )
        return None if namespace is None else dict(namespace.as_dict())

    def put_managed_namespace(self, resource_group: str, cluster: str, name: str, body: dict[str, Any]) -> None:
        """Start the create (or update) of an AKS managed namespace; like the cluster, not awaited."""
        from azure.mgmt.containerservice import models

        self._call(
            f"PUT managed namespace {cluster}/{name}",
            lambda: self._client("aks").managed_namespaces.begin_create_or_update(
                resource_group, cluster, name, models.ManagedNamespace(body), polling=False
            ),
        )

    def cluster_user_kubeconfig(self, resource_group: str, name: str) -> bytes:
        """The USER kubeconfig (server, CA, kubelogin exec entry). Never the admin one: local
        accounts are disabled, and the app needs no more than its namespace."""
        result = self._call(
            f"POST listClusterUserCredential {name}",
            lambda: self._client("aks").managed_clusters.list_cluster_user_credentials(resource_group, name),
        )
        configs = list(result.kubeconfigs or [])
        if not configs or not configs[0].value:
            raise ArmCallFailed(
                f"POST listClusterUserCredential {name}", ArmFault(200, "NoKubeconfig", "the answer had no kubeconfig")
            )
        value = configs[0].value
        return bytes(value) if not isinstance(value, str) else value.encode()

    # --- role assignments -------------------------------------------------------------------
    def get_role_assignment(self, scope: str, name: str) -> dict[str, Any] | None:
        assignment = self._call(
            f"GET role assignment {name} on {scope}",
            lambda: self._client("authorization").role_assignments.get(scope, name),
            none_on_404=True,
        )
        return None if assignment is None else dict(assignment.serialize(keep_readonly=True))

    def create_role_assignment(self, scope: str, name: str, body: dict[str, Any]) -> bool:
        """Create it; False when an equal assignment already exists under another name (409)."""
        # the client's role_assignments speak api-version 2022-04-01
        from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

        props = body["properties"]
        parameters = RoleAssignmentCreateParameters(
            role_definition_id=props["roleDefinitionId"],
            principal_id=props["principalId"],
            principal_type=props.get("principalType", "ServicePrincipal"),
        )
        try:
            self._call(
                f"PUT role assignment {name} on {scope}",
                lambda: self._client("authorization").role_assignments.create(scope, name, parameters),
            )
        except ArmCallFailed as e:
            if e.fault.status == 409 and e.fault.code == "RoleAssignmentExists":
                return False
            raise
        return True

    def list_role_assignments(self, scope: str, principal_id: str) -> list[dict[str, Any]]:
        """The principal's role assignments that apply at ``scope`` (at it or above it: ``atScope()``;
        Role Assignments - List For Scope, learn.microsoft.com/rest/api/authorization/role-assignments/
        list-for-scope), as REST JSON with ``properties.scope``."""
        flt = f"atScope() and assignedTo('{principal_id}')"
        found: list[dict[str, Any]] = self._call(
            f"GET role assignments of {principal_id} on {scope}",
            lambda: [
                dict(a.serialize(keep_readonly=True))
                for a in self._client("authorization").role_assignments.list_for_scope(scope, filter=flt)
            ],
        )
        return found

    def delete_role_assignment(self, assignment_id: str) -> None:
        """Delete one role assignment by its full id (200, or 204 when it is already gone)."""
        self._call(
            f"DELETE role assignment {assignment_id}",
            lambda: self._client("authorization").role_assignments.delete_by_id(assignment_id),
        )

    # --- managed cluster power (idle stop / start) ------------------------------------------
    # Kept apart from the bootstrap's calls above: the idle policy and `cli cluster stop|start`
    # use these. Both are LROs on ARM's side (POST → 202 + Location, or 204 when there is nothing
    # to do: azure-rest-api-specs containerservice ManagedClusters_Stop / ManagedClusters_Start,
    # examples ManagedClustersStop.json, ManagedClustersStart.json). Like the PUTs, they are sent
    # with polling=False: the POST is the whole action and later calls observe
    # provisioningState (Stopping/Starting → Succeeded) and powerState.code (Running/Stopped).
    # A POST while another operation runs on the cluster fails with 409 OperationNotAllowed
    # ("...in progress..."), which is how two instances that both decide to stop or start
    # never run the operation twice.
    def stop_cluster(self, resource_group: str, name: str) -> None:
        """Start stopping the cluster (control plane and nodes; state is kept). Not awaited."""
        self._call(
            f"POST stop managed cluster {name}",
            lambda: self._client("aks").managed_clusters.begin_stop(resource_group, name, polling=False),
        )

    def start_cluster(self, resource_group: str, name: str) -> None:
        """Start starting a stopped cluster. Not awaited."""
        self._call(
            f"POST start managed cluster {name}",
            lambda: self._client("aks").managed_clusters.begin_start(resource_group, name, polling=False),
        )


AKS_ENTRA_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
"""The AKS Entra server application: tokens for this audience open AKS's Kubernetes API."""
