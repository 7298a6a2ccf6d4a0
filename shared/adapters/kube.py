"""Kubernetes adapter: the only module that talks to the Kubernetes API.

It rides on the official client's ``ApiClient`` (auth, TLS, proxies, token refresh hook)
but sends plain dicts and reads raw JSON: the typed models of kubernetes 37 are pydantic
objects whose (de)serialisation costs more than the HTTP round trip on the hot path, and
the manifests are already validated values (``shared.job.render``).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.base.errors import PermanentError, TransientError, VnbError

if TYPE_CHECKING:  # the client is imported when a cluster is first built (cold start: issue 16)
    import kubernetes.client

JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
PODS = "/api/v1/namespaces/{ns}/pods"
SECRETS = "/api/v1/namespaces/{ns}/secrets"
NODES = "/api/v1/nodes"
NAMESPACES = "/api/v1/namespaces"

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# 401/403 are usually a role assignment that has not propagated yet (Azure RBAC can take
# minutes): worth the host's retries before the message is dead-lettered.
_RETRY_AUTH_STATUS = frozenset({401, 403})


_WEBHOOK_DENIAL = re.compile(r'admission webhook "[^"]*" denied the request')
"""How the API server words a webhook's denial, whatever code the webhook chose (403 unless it
set one): kubernetes ``staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/errors/
statuserror.go`` ``ToStatusErr`` writes ``<resource> "<name>" is forbidden: admission webhook
"<webhook>" denied the request: <the webhook's message>``, reason ``Forbidden``, code 403 by
default. A missing RBAC role is also 403 ``Forbidden``, but worded by the authorizer
(``endpoints/handlers/responsewriters/errors.go`` ``forbiddenMessage``: ``User "…" cannot create
resource "jobs" …``), with no webhook in it: that one stays transient (a role assignment may
still be propagating)."""


class KubeApiError(VnbError):
    """A Kubernetes API call failed; ``status``/``reason`` come from the API's Status."""


class KubeTransientError(TransientError):
    pass


class KubePermanentError(PermanentError):
    pass


class AlreadyExists(KubePermanentError):
    """409 AlreadyExists on create: the object is there (an idempotent create found it)."""


class AdmissionDenied(KubePermanentError):
    """An admission webhook (Azure Policy for AKS, Gatekeeper, Kyverno) denied the request: a
    policy, not a missing role, so retrying cannot help. ``message`` is the webhook's."""


class Conflict(KubeTransientError):
    """409 Conflict: the object changed since it was read (resourceVersion mismatch)."""


def _error(method: str, path: str, status: int, body: bytes) -> VnbError:
    reason, message = None, body[:500].decode("utf-8", errors="replace")
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("kind") == "Status":
        reason = parsed.get("reason")
        message = parsed.get("message") or message
    text = f"Kubernetes API {method} {path} returned {status} {reason or ''}: {message}".replace("  ", " ")
    if status == 409 and reason == "AlreadyExists":
        return AlreadyExists(text, status=status, reason=reason)
    if status == 409:
        return Conflict(text, status=status, reason=reason)
    if 400 <= status < 500 and status not in _TRANSIENT_STATUS and _WEBHOOK_DENIAL.search(message):
        return AdmissionDenied(message, status=status, reason="AdmissionDenied")
    if status in _TRANSIENT_STATUS or status in _RETRY_AUTH_STATUS:
        hint = ""
        if status in _RETRY_AUTH_STATUS:
            hint = (
                " — the app's identity needs 'Azure Kubernetes Service RBAC Writer' on the namespace "
                "(or an equivalent Role); new role assignments can take minutes to apply"
            )
        return KubeTransientError(text + hint, status=status, reason=reason)
    return KubePermanentError(text, status=status, reason=reason)


class KubeHttp:
    """JSON over the official client's connection pool. One per process (see ``clients``)."""

    def __init__(self, api_client: kubernetes.client.ApiClient, *, timeout: float) -> None:
        self._api = api_client
        self._timeout = (min(timeout, 5.0), timeout)

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> Any:
        """Send one request; return parsed JSON (or text when ``raw``); raise a VnbError."""
        headers = {"Accept": "text/plain" if raw else "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        import kubernetes.client  # loaded already: an ApiClient exists
        import urllib3

        try:
            # The body is not given to param_serialize: its sanitize_for_serialization walks the
            # whole manifest (a third of the adapter's CPU per create, profiled) to turn models
            # and datetimes into JSON, and our bodies are JSON values already.
            verb, url, header_params, _, post_params = self._api.param_serialize(
                method,
                path,
                query_params=list((query or {}).items()),
                header_params=headers,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(verb, url, header_params, body, post_params, _request_timeout=self._timeout)
            data = response.read()  # type: ignore[no-untyped-call]
            response.response.release_conn()
        except kubernetes.client.ApiException as e:  # status 0: TLS or request preparation
            raise KubeTransientError(
                f"Kubernetes API {method} {path} failed: {e.reason}", status=e.status or None
            ) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeTransientError(
                f"Kubernetes API {method} {path} unreachable at {self.host}: {type(e).__name__}: {e}"
            ) from e
        if not 200 <= response.status < 300:
            raise _error(method, path, response.status, data or b"")
        if raw:
            return (data or b"").decode("utf-8", errors="replace")
        return json.loads(data) if data else None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    continue_token: str | None


class Cluster:
    """The calls the services make, in one namespace (small and typed, easy to stand in for)."""

    def __init__(self, http: KubeHttp, namespace: str) -> None:
        self.http = http
        self.namespace = namespace
        self._jobs = JOBS.format(ns=quote(namespace))
        self._pods = PODS.format(ns=quote(namespace))
        self._secrets = SECRETS.format(ns=quote(namespace))

    # jobs
    def create_job(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.http.call("POST", self._jobs, body=manifest)
        return result

    def _get(self, path: str) -> dict[str, Any] | None:
        """GET an object; None when it does not exist (404)."""
        try:
            result: dict[str, Any] = self.http.call("GET", path)
        except KubePermanentError as e:
            if e.status == 404:
                return None
            raise
        return result

    def _delete(self, path: str, body: Mapping[str, Any] | None = None) -> bool:
        """DELETE an object; False when it was already gone (404)."""
        try:
            self.http.call("DELETE", path, body=body)
        except KubePermanentError as e:
            if e.status == 404:
                return False
            raise
        return True

    def get_job(self, name: str) -> dict[str, Any] | None:
        return self._get(f"{self._jobs}/{quote(name)}")

    def list_jobs(self, *, label_selector: str, limit: int, continue_token: str | None = None) -> Page:
        query: dict[str, str | int] = {"labelSelector": label_selector, "limit": limit}
        if continue_token:
            query["continue"] = continue_token
        result = self.http.call("GET", self._jobs, query=query)
        return Page(
            items=list(result.get("items") or []), continue_token=(result.get("metadata") or {}).get("continue") or None
        )

    def patch_job_metadata(
        self,
        name: str,
        *,
        labels: Mapping[str, str | None] | None = None,
        annotations: Mapping[str, str | None] | None = None,
        finalizers: list[str] | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Merge-patch labels/annotations (None deletes) and, if given, the finalizer list.

        A merge patch replaces a list wholesale, so pass ``resource_version`` with
        ``finalizers``: a finalizer another controller added since the read then makes it a 409
        instead of being dropped.
        """
        metadata: dict[str, Any] = {}
        if labels is not None:
            metadata["labels"] = dict(labels)
        if annotations is not None:
            metadata["annotations"] = dict(annotations)
        if finalizers is not None:
            metadata["finalizers"] = list(finalizers)
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        result: dict[str, Any] = self.http.call(
            "PATCH",
            f"{self._jobs}/{quote(name)}",
            body={"metadata": metadata},
            content_type="application/merge-patch+json",
        )
        return result

    def delete_job(self, name: str, *, propagation: str = "Background") -> bool:
        """Delete a Job and (Background) its pods; False if it was already gone.

        batch/v1 orphans a Job's pods by default: without Background propagation the pods,
        and on ACI their container groups, would stay behind.
        """
        return self._delete(
            f"{self._jobs}/{quote(name)}",
            {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
        )

    def delete_pod(self, name: str) -> bool:
        """Delete one (terminated) pod, freeing its ACI container group; False if already gone."""
        return self._delete(f"{self._pods}/{quote(name)}")

    # secrets (the per-request Secret of files; the values never leave this call)
    def create_secret(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.http.call("POST", self._secrets, body=manifest)
        return result

    def get_secret(self, name: str) -> dict[str, Any] | None:
        return self._get(f"{self._secrets}/{quote(name)}")

    def replace_secret(self, name: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """PUT the whole Secret (data and metadata) over an existing one."""
        result: dict[str, Any] = self.http.call("PUT", f"{self._secrets}/{quote(name)}", body=manifest)
        return result

    def set_secret_owner(self, name: str, owner: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch the Secret's ownerReferences to ``[owner]`` (the GC then deletes it with its owner)."""
        result: dict[str, Any] = self.http.call(
            "PATCH",
            f"{self._secrets}/{quote(name)}",
            body={"metadata": {"ownerReferences": [dict(owner)]}},
            content_type="application/merge-patch+json",
        )
        return result

    def delete_secret(self, name: str) -> bool:
        return self._delete(f"{self._secrets}/{quote(name)}")

    def list_secrets(self, *, label_selector: str) -> list[dict[str, Any]]:
        result = self.http.call("GET", self._secrets, query={"labelSelector": label_selector})
        return list(result.get("items") or [])

    # pods, logs, nodes, namespaces
    def list_pods(self, *, label_selector: str) -> list[dict[str, Any]]:
        result = self.http.call("GET", self._pods, query={"labelSelector": label_selector})
        return list(result.get("items") or [])

    def pod_log(self, pod: str, *, tail_lines: int, limit_bytes: int, container: str | None = None) -> str | None:
        """The tail of a pod's log, or None when it cannot be read (never started, gone)."""
        query: dict[str, str | int] = {"tailLines": tail_lines, "limitBytes": limit_bytes}
        if container:
            query["container"] = container
        try:
            text: str = self.http.call("GET", f"{self._pods}/{quote(pod)}/log", query=query, raw=True)
        except KubePermanentError:
            return None
        return text

    def get_node(self, name: str) -> dict[str, Any] | None:
        return self._get(f"{NODES}/{quote(name)}")

    def namespace_exists(self) -> bool:
        return self._get(f"{NAMESPACES}/{quote(self.namespace)}") is not None


# --- client construction: lazily, once per process -------------------------------------

_lock = threading.Lock()
_cache: dict[tuple[Any, ...], KubeHttp] = {}


def _cached(key: tuple[Any, ...], build: Callable[[], KubeHttp]) -> KubeHttp:
    with _lock:
        client = _cache.get(key)
        if client is None:
            client = _cache[key] = build()
        return client


def _pool(cfg: kubernetes.client.Configuration) -> None:
    # Per instance the queue listener keeps up to batchSize + newBatchThreshold (16 + 8)
    # messages in flight (azure-sdk-for-net .../Shared/Queues/QueueListener.cs), and the worker
    # runs sync functions on a thread pool of PYTHON_THREADPOOL_THREAD_COUNT threads, unset =
    # ThreadPoolExecutor's default min(32, cpu + 4) (azure-functions-runtime 1.3.0
    # utils/threadpool.py start_threadpool_executor): never more than 32 calls at once.
    cfg.connection_pool_maxsize = 32
    # Pin the proxy read from the environment now. Left "from env", every assignment of
    # cfg.host re-reads every environment variable (urllib's getproxies), and the kubeconfig
    # loader's refresh hook assigns it before each request: ~0.2 ms of CPU per API call with
    # a Functions worker's environment (profiled), for a value the connection pool, built
    # once, never looks at again.
    cfg.proxy = cfg.proxy


def from_kubeconfig_file(path: str, *, context: str | None, timeout: float) -> KubeHttp:
    """A client for a kubeconfig file (bring-your-own-cluster mode), cached per file+context."""
    file = Path(path).expanduser()
    try:
        stamp = file.stat().st_mtime_ns
    except OSError as e:
        raise PermanentError(f"VNB_KUBECONFIG: cannot read {file}: {e.strerror}") from e

    def build() -> KubeHttp:
        import kubernetes.client
        import kubernetes.config

        cfg = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(file), context=context, client_configuration=cfg, persist_config=False
            )
        except kubernetes.config.ConfigException as e:
            raise PermanentError(f"VNB_KUBECONFIG: {file} is not usable: {e}") from e
        _pool(cfg)
        return KubeHttp(kubernetes.client.ApiClient(cfg), timeout=timeout)

    return _cached(("file", str(file), stamp, context, timeout), build)


def from_kubeconfig_dict(config: Mapping[str, Any], *, context: str | None, timeout: float) -> KubeHttp:
    """A client for an in-memory kubeconfig (not cached: the caller owns its lifetime)."""
    import kubernetes.client
    import kubernetes.config

    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
        dict(config), context=context, client_configuration=cfg, persist_config=False
    )
    _pool(cfg)
    return KubeHttp(kubernetes.client.ApiClient(cfg), timeout=timeout)


def from_token(*, server: str, ca_pem: bytes, token: Callable[[], str], timeout: float, cache_key: str) -> KubeHttp:
    """A client with a bearer token refreshed through ``token()`` before every request.

    ``token`` should be cheap when the token is still valid (azure-identity caches it);
    this is how an Entra ID (AAD) cluster is reached without kubelogin or admin credentials.
    """

    def build() -> KubeHttp:
        import kubernetes.client

        cfg = kubernetes.client.Configuration(host=server)
        cfg.ssl_ca_cert = None
        cfg.ca_cert_data = ca_pem.decode()
        cfg.api_key_prefix = {"authorization": "Bearer"}
        cfg.api_key = {"authorization": token()}

        def refresh(c: kubernetes.client.Configuration) -> None:
            c.api_key["authorization"] = token()

        cfg.refresh_api_key_hook = refresh  # type: ignore[assignment]
        _pool(cfg)
        return KubeHttp(kubernetes.client.ApiClient(cfg), timeout=timeout)

    return _cached(("token", cache_key, server, timeout), build)
