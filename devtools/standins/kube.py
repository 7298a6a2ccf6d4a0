"""A Kubernetes API stand-in over real HTTPS on loopback: a fake kube-apiserver with a Job
controller, a scheduler and a simulated AKS virtual node (Azure Container Instances).

The official ``kubernetes`` client talks to it through a kubeconfig::

    with KubeStandIn() as kube:
        cfg = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config_from_dict(kube.kubeconfig_dict(), client_configuration=cfg)
        batch = kubernetes.client.BatchV1Api(kubernetes.client.ApiClient(cfg))

Standard library only (plus the trustme CA from ``devtools.tls``). Objects, errors and
status transitions follow kube-apiserver 1.33 where the app depends on them; see
``kube_cluster`` for the controllers and the script language that pods "run".
"""

from __future__ import annotations

import base64
import collections
import copy
import dataclasses
import json
import random
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from devtools.standins.kube_cluster import Cluster
from devtools.standins.kube_nodes import SYSTEM_NODE, VIRTUAL_NODE
from devtools.standins.kube_objects import (
    JOB_FIELDS,
    JOBS,
    NAMESPACE_FIELDS,
    NAMESPACES,
    NODE_FIELDS,
    NODES,
    POD_FIELDS,
    PODS,
    ApiError,
    Obj,
    Resource,
    bad_request,
    conflict,
    decode_continue,
    dumps,
    json_patch,
    merge_patch,
    method_not_allowed,
    not_found,
    parse_field_selector,
    parse_label_selector,
    route_not_found,
    strategic_merge_patch,
)
from devtools.standins.kube_seed import seed_finished_jobs
from devtools.standins.virtual_node.provider import AciProvider, AciSettings
from devtools.tls import shared_ca

__all__ = ["SYSTEM_NODE", "VIRTUAL_NODE", "AciSettings", "KubeStandIn"]

KUBE_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.2",
    "gitCommit": "a57b6f7709f6c2722b92f07b8b4c48210a51fc40",
    "gitTreeState": "clean",
    "buildDate": "2025-06-17T18:36:08Z",
    "goVersion": "go1.24.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_NAME = r"(?P<name>[^/]+)"
_NS = r"(?P<ns>[^/]+)"
# (regex, route template for metrics, handler id)
_ROUTES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(p), t, h)
    for p, t, h in [
        (r"/apis/batch/v1/namespaces/{ns}/jobs", "/apis/batch/v1/namespaces/{ns}/jobs", "jobs"),
        (r"/apis/batch/v1/namespaces/{ns}/jobs/{name}", "/apis/batch/v1/namespaces/{ns}/jobs/{name}", "job"),
        (
            r"/apis/batch/v1/namespaces/{ns}/jobs/{name}/status",
            "/apis/batch/v1/namespaces/{ns}/jobs/{name}/status",
            "job_status",
        ),
        (r"/apis/batch/v1/jobs", "/apis/batch/v1/jobs", "jobs_all"),
        (r"/api/v1/namespaces/{ns}/pods", "/api/v1/namespaces/{ns}/pods", "pods"),
        (r"/api/v1/namespaces/{ns}/pods/{name}", "/api/v1/namespaces/{ns}/pods/{name}", "pod"),
        (r"/api/v1/namespaces/{ns}/pods/{name}/log", "/api/v1/namespaces/{ns}/pods/{name}/log", "pod_log"),
        (r"/api/v1/pods", "/api/v1/pods", "pods_all"),
        (r"/api/v1/namespaces", "/api/v1/namespaces", "namespaces"),
        (r"/api/v1/namespaces/{name}", "/api/v1/namespaces/{name}", "namespace"),
        (r"/api/v1/nodes", "/api/v1/nodes", "nodes"),
        (r"/api/v1/nodes/{name}", "/api/v1/nodes/{name}", "node"),
        (r"/version", "/version", "version"),
        (r"/(?:healthz|livez|readyz)", "/healthz", "health"),
        (r"/api", "/api", "api"),
        (r"/apis", "/apis", "apis"),
    ]
    for p in ["^" + p.replace("{ns}", _NS).replace("{name}", _NAME) + "/?$"]
]

_LIST_KINDS = {
    JOBS: ("JobList", "batch/v1"),
    PODS: ("PodList", "v1"),
    NODES: ("NodeList", "v1"),
    NAMESPACES: ("NamespaceList", "v1"),
}
_FIELDS = {JOBS: JOB_FIELDS, PODS: POD_FIELDS, NODES: NODE_FIELDS, NAMESPACES: NAMESPACE_FIELDS}


def _match_route(path: str) -> tuple[str | None, str, dict[str, str]]:
    for rx, template, handler in _ROUTES:
        m = rx.match(path)
        if m:
            return handler, template, {k: unquote(v) for k, v in m.groupdict().items()}
    return None, path, {}


def _with_kind(res: Resource, obj: Obj) -> Obj:
    return {"kind": res.kind, "apiVersion": res.api_version, **obj}


@dataclass
class _FailRule:
    method: str | None
    path: re.Pattern[str] | None
    status: int
    remaining: int | None
    drop: bool
    after: bool


@dataclass
class _Rates:
    error_rate: float
    error_status: int
    slow_rate: float
    slow_seconds: float
    drop_rate: float
    path: re.Pattern[str] | None
    rng: random.Random
    after: bool


@dataclass
class _Fault:
    status: int = 0  # 0 = no error response
    drop: bool = False
    slow: float = 0.0
    after: bool = False


def _injected_error(status: int) -> ApiError:
    if status == 429:
        return ApiError(
            429,
            "Too many requests, please try again later.",
            details={"causes": [{"reason": "ServerBusy"}], "retryAfterSeconds": 1},
            headers={"Retry-After": "1"},
        )
    if status == 503:
        return ApiError(
            503, "the server is currently unable to handle the request (injected by the stand-in)", details={}
        )
    if status == 504:
        return ApiError(504, "Timeout: request did not complete within the allotted timeout", details={})
    if status == 401:
        return ApiError(401, "Unauthorized")
    return ApiError(
        status,
        f"Internal error occurred: injected fault (HTTP {status})"
        if status >= 500
        else f"injected fault (HTTP {status})",
        details={},
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-standin/1.33"
    sys_version = ""
    timeout = 120
    server: _TLSServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self, method: str) -> None:
        standin = self.server.standin
        path, _, query = self.path.partition("?")
        handler, template, params = _match_route(path)
        standin._record(method, path, query, template)
        body = self._read_body()
        fault = standin._fault_for(method, path)
        if fault.slow:
            time.sleep(fault.slow)
        if fault.drop and not fault.after:
            self._drop()
            return
        headers: dict[str, str] = {}
        try:
            if fault.status and not fault.after:
                raise _injected_error(fault.status)
            auth = self.headers.get("Authorization") or ""
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
            if standin.token_validator is not None and not standin.token_validator(token):
                raise ApiError(401, "Unauthorized")
            if handler is None:
                raise route_not_found()
            q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
            code, payload, ctype = standin._dispatch(
                method, handler, params, q, body, self.headers.get("Content-Type") or ""
            )
            if fault.status:
                raise _injected_error(fault.status)
        except ApiError as e:
            code, payload, ctype = e.code, dumps(e.status()), "application/json"
            headers.update(e.headers)
        except Exception:  # a stand-in bug must surface as a 500 Status, not a hung client
            traceback.print_exc(file=sys.stderr)
            e2 = ApiError(
                500, "Internal error occurred: stand-in bug: " + traceback.format_exc(limit=1).strip().splitlines()[-1]
            )
            code, payload, ctype = 500, dumps(e2.status()), "application/json"
        if fault.drop:
            self._drop()
            return
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", standin._audit_id())
        for k, v in headers.items():
            self.send_header(k, v)
        # headers and body in one TLS write: one segment per response
        self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
        self.flush_headers()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], ctx: ssl.SSLContext, standin: KubeStandIn) -> None:
        self.ssl_ctx = ctx
        self.standin = standin
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup; skip it
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(30)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle + delayed-ACK stalls
        try:
            conn = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            request.close()
            return
        with self.conns_lock:
            self.conns.add(conn)
        try:
            _Handler(conn, client_address, self)
        except (OSError, ssl.SSLError, ValueError):
            pass  # client went away
        finally:
            with self.conns_lock:
                self.conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass

    def close_connections(self) -> None:
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class KubeStandIn:
    """A fake kube-apiserver + Job controller + AKS virtual node, served over HTTPS on loopback."""

    def __init__(
        self,
        *,
        virtual_node: bool = True,
        system_node: bool = True,
        namespaces: Iterable[str] = ("default", "vnode-batch"),
        pod_start_seconds: float | None = None,
        time_scale: float = 1.0,
        tick_seconds: float = 0.02,
        token_validator: Callable[[str | None], bool] | None = None,
        port: int = 0,
        pod_retry_backoff_seconds: float = 0.0,
        aci: AciSettings | None = None,
    ) -> None:
        """``pod_start_seconds`` overrides every node's start time (simulated seconds); by default a
        system-node pod starts in about a second and a virtual-node pod in ACI's
        ``aci.start_seconds``. ``time_scale`` turns simulated seconds into wall-clock seconds.
        ``aci`` configures the modelled ACI subscription + region (quotas, exit codes, sizes)."""
        self.cluster = Cluster(
            namespaces=namespaces,
            virtual_node=virtual_node,
            system_node=system_node,
            pod_start_seconds=pod_start_seconds,
            time_scale=time_scale,
            pod_retry_backoff_seconds=pod_retry_backoff_seconds,
            aci=aci,
        )
        self.tick_seconds = tick_seconds
        self.token_validator = token_validator
        self.port = port
        self._ca = shared_ca()
        self.ca_pem: bytes = self._ca.ca_pem
        self._server: _TLSServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._controller: threading.Thread | None = None
        self._stop = threading.Event()
        self._metrics_lock = threading.Lock()
        self.request_log: list[tuple[str, str, str]] = []
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._faults_lock = threading.Lock()
        self._fail_rules: list[_FailRule] = []
        self._rates: _Rates | None = None
        self._audit = 0
        self.controller_errors: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> KubeStandIn:
        if self._server is not None:
            return self
        self._serve()
        self._stop.clear()
        self._controller = threading.Thread(target=self._control_loop, name="kube-standin-controller", daemon=True)
        self._controller.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._controller is not None:
            self._controller.join(timeout=5)
            self._controller = None
        self._unserve()

    def __enter__(self) -> KubeStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart(self, downtime_seconds: float = 0.5) -> None:
        """Like an apiserver restart with etcd intact: the listener and every connection close,
        nothing answers for ``downtime_seconds``, then the same port serves the same state.
        The controllers keep running meanwhile (they are separate processes in a real cluster)."""
        self._unserve()
        time.sleep(downtime_seconds)
        self._serve()

    def _serve(self) -> None:
        server = _TLSServer(("127.0.0.1", self.port), self._ca.server_context(), self)
        self.port = server.server_address[1]
        self._server = server
        self._serve_thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"kube-standin-{self.port}", daemon=True
        )
        self._serve_thread.start()

    def _unserve(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout=5)

    def _control_loop(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.cluster.tick()
            except Exception:  # keep the controllers alive; the error is kept for tests to see
                text = traceback.format_exc()
                self.controller_errors.append(text)
                print(text, file=sys.stderr)

    # ------------------------------------------------------------------ kubeconfig

    def kubeconfig_dict(self, *, token: str | None = "standin-token", namespace: str = "vnode-batch") -> dict[str, Any]:
        user: dict[str, Any] = {"token": token} if token is not None else {}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "standin",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(self.ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": "standin-user", "user": user}],
            "contexts": [
                {"name": "standin", "context": {"cluster": "standin", "user": "standin-user", "namespace": namespace}}
            ],
            "current-context": "standin",
            "preferences": {},
        }

    def write_kubeconfig(self, path: Path, **kw: Any) -> Path:
        """Writes the kubeconfig as JSON (a YAML subset every kubeconfig loader reads)."""
        path = Path(path)
        path.write_text(json.dumps(self.kubeconfig_dict(**kw), indent=2))
        return path

    # ------------------------------------------------------------------ nodes

    @property
    def aci(self) -> AciProvider:
        """The virtual node's ACI model (read ``aci.settings``; change state only through the
        ``aci_*`` methods below, which take the cluster lock)."""
        return self.cluster.aci

    def aci_counters(self) -> dict[str, Any]:
        """Groups and cores in use and at peak, creates accepted, creates refused by ACI code,
        deletes (a plain dict, so ``bench._harness.KubeProcess.call`` can ship it)."""
        with self.cluster.lock:
            c = self.cluster.aci.counters
            out = dataclasses.asdict(c)
            out["creates_refused"] = dict(c.creates_refused)
            return out

    def aci_inject(self, code: str, times: int = 1) -> None:
        """The next ``times`` container-group creates fail with ``ServiceUnavailable`` (409,
        regional capacity) or ``TooManyRequests`` (429 throttling)."""
        with self.cluster.lock:
            self.cluster.aci.inject(code, times)

    def aci_set_capacity_available(self, available: bool) -> None:
        """False: every create fails with 409 ServiceUnavailable until set back to True."""
        with self.cluster.lock:
            self.cluster.aci.set_capacity_available(available)

    def aci_clear_faults(self) -> None:
        with self.cluster.lock:
            self.cluster.aci.clear_faults()

    def add_virtual_node(self, ready: bool = True) -> None:
        self.cluster.add_virtual_node(ready)

    def set_node_ready(self, name: str, ready: bool) -> None:
        self.cluster.set_node_ready(name, ready)

    def remove_virtual_node(self) -> None:
        self.cluster.remove_virtual_node()

    # ------------------------------------------------------------------ state inspection

    def _copies(self, res: Resource, objs: list[Obj]) -> list[dict[str, Any]]:
        return [json.loads(dumps(_with_kind(res, o))) for o in objs]

    def jobs(self, namespace: str | None = None) -> list[dict[str, Any]]:
        with self.cluster.lock:
            items, _, _ = self.cluster.jobs.page(namespace, [], [], None, None)
            return self._copies(JOBS, items)

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        with self.cluster.lock:
            items, _, _ = self.cluster.pods.page(namespace, [], [], None, None)
            return self._copies(PODS, items)

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.cluster.lock:
            obj = self.cluster.jobs.get(namespace, name)
            return None if obj is None else self._copies(JOBS, [obj])[0]

    def nodes(self) -> list[dict[str, Any]]:
        with self.cluster.lock:
            return self._copies(NODES, [n for _, n in sorted(self.cluster.nodes.items())])

    def delete_job_behind_the_apps_back(self, namespace: str, name: str) -> None:
        """Someone else deleted the Job (kubectl, TTL): background propagation, no request logged."""
        with self.cluster.lock:
            self.cluster.delete_job(namespace, name, policy="Background", preconditions=None)

    def seed_finished_jobs(
        self,
        namespace: str,
        count: int,
        *,
        labels: dict[str, str],
        annotations: dict[str, str] | None = None,
        succeeded: bool = True,
        name_prefix: str = "seed",
        with_pods: bool = True,
    ) -> None:
        seed_finished_jobs(
            self.cluster,
            namespace,
            count,
            labels=labels,
            annotations=annotations,
            succeeded=succeeded,
            name_prefix=name_prefix,
            with_pods=with_pods,
        )

    # ------------------------------------------------------------------ faults

    def fail_requests(
        self,
        *,
        method: str | None = None,
        path_regex: str | None = None,
        status: int = 500,
        count: int | None = None,
        drop: bool = False,
        after: bool = False,
    ) -> None:
        """The next ``count`` matching requests (None = all) get a Status with ``status``.
        ``drop=True`` closes the connection without a response instead; ``after=True`` lets the
        request take effect first (a create that succeeded but whose answer was lost)."""
        rule = _FailRule(
            method.upper() if method else None,
            re.compile(path_regex) if path_regex else None,
            status,
            count,
            drop,
            after,
        )
        with self._faults_lock:
            self._fail_rules.append(rule)

    def set_fault_rates(
        self,
        *,
        error_rate: float = 0.0,
        error_status: int = 500,
        slow_rate: float = 0.0,
        slow_seconds: float = 0.5,
        drop_rate: float = 0.0,
        seed: int = 0,
        path_regex: str | None = None,
        after: bool = False,
    ) -> None:
        with self._faults_lock:
            self._rates = _Rates(
                error_rate,
                error_status,
                slow_rate,
                slow_seconds,
                drop_rate,
                re.compile(path_regex) if path_regex else None,
                random.Random(seed),
                after,
            )

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._fail_rules.clear()
            self._rates = None

    def _fault_for(self, method: str, path: str) -> _Fault:
        with self._faults_lock:
            for rule in self._fail_rules:
                if rule.remaining == 0:
                    continue
                if rule.method and rule.method != method:
                    continue
                if rule.path and not rule.path.search(path):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                return _Fault(status=0 if rule.drop else rule.status, drop=rule.drop, after=rule.after)
            r = self._rates
            if r is None or (r.path is not None and not r.path.search(path)):
                return _Fault()
            drop, err, slow = r.rng.random(), r.rng.random(), r.rng.random()
            return _Fault(
                status=r.error_status if err < r.error_rate else 0,
                drop=drop < r.drop_rate,
                slow=r.slow_seconds if slow < r.slow_rate else 0.0,
                after=r.after,
            )

    # ------------------------------------------------------------------ metrics

    def _record(self, method: str, path: str, query: str, template: str) -> None:
        with self._metrics_lock:
            self.request_log.append((method, path, query))
            self._counts[(method, template)] += 1

    def _audit_id(self) -> str:
        with self._metrics_lock:
            self._audit += 1
            return f"00000000-0000-4000-8000-{self._audit:012d}"

    def request_counts(self) -> collections.Counter[tuple[str, str]]:
        with self._metrics_lock:
            return collections.Counter(self._counts)

    def reset_metrics(self) -> None:
        with self._metrics_lock:
            self.request_log.clear()
            self._counts.clear()

    # ------------------------------------------------------------------ request dispatch

    def _dispatch(
        self, method: str, handler: str, p: dict[str, str], q: dict[str, str], body: bytes, ctype: str
    ) -> tuple[int, bytes, str]:
        c = self.cluster
        if q.get("watch") in ("true", "1"):
            raise bad_request("watch is not supported by the vnode-batch Kubernetes stand-in")
        if handler == "version":
            return 200, dumps(KUBE_VERSION), "application/json"
        if handler == "health":
            return 200, b"ok", "text/plain; charset=utf-8"
        if handler == "api":
            return (
                200,
                dumps(
                    {
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                        ],
                    }
                ),
                "application/json",
            )
        if handler == "apis":
            gv = {"groupVersion": "batch/v1", "version": "v1"}
            return (
                200,
                dumps(
                    {
                        "kind": "APIGroupList",
                        "apiVersion": "v1",
                        "groups": [{"name": "batch", "versions": [gv], "preferredVersion": gv}],
                    }
                ),
                "application/json",
            )
        res = {
            "jobs": JOBS,
            "jobs_all": JOBS,
            "job": JOBS,
            "job_status": JOBS,
            "pods": PODS,
            "pods_all": PODS,
            "pod": PODS,
            "pod_log": PODS,
            "namespaces": NAMESPACES,
            "namespace": NAMESPACES,
            "nodes": NODES,
            "node": NODES,
        }[handler]
        ns = p.get("ns")
        name = p.get("name", "")
        with c.lock:
            if handler in ("jobs", "jobs_all", "pods", "pods_all", "namespaces", "nodes") and method == "GET":
                return 200, self._list(res, ns, q), "application/json"
            if handler == "namespaces" and method == "POST":
                return 201, dumps(_with_kind(NAMESPACES, c.create_namespace(self._json(body, res)))), "application/json"
            if handler == "jobs" and method == "POST":
                assert ns is not None
                obj = c.create_job(ns, self._json(body, res), dry_run=q.get("dryRun") == "All")
                return 201, dumps(_with_kind(JOBS, obj)), "application/json"
            if handler in ("namespace", "node") and method == "GET":
                src = c.namespaces if res is NAMESPACES else c.nodes
                if name not in src:
                    raise not_found(res, name)
                return 200, dumps(_with_kind(res, src[name])), "application/json"
            if handler in ("job", "job_status", "pod"):
                assert ns is not None
                if method == "GET":
                    found = c.table(res).get(ns, name)
                    if found is None:
                        raise not_found(res, name)
                    return 200, dumps(_with_kind(res, found)), "application/json"
                if method == "DELETE" and handler != "job_status":
                    return 200, self._delete(res, ns, name, q, body), "application/json"
                if handler == "job" and method == "PUT":
                    new = self._json(body, res)
                    obj = c.update_job(
                        ns, name, new, expect_rv=(new.get("metadata") or {}).get("resourceVersion"), require_rv=True
                    )
                    return 200, dumps(_with_kind(JOBS, obj)), "application/json"
                if handler == "job" and method == "PATCH":
                    return 200, dumps(_with_kind(JOBS, self._patch_job(ns, name, body, ctype))), "application/json"
            if handler == "pod_log" and method == "GET":
                assert ns is not None
                text = c.pod_log(
                    ns,
                    name,
                    container=q.get("container") or None,
                    tail_lines=self._int_param(q, "tailLines"),
                    limit_bytes=self._int_param(q, "limitBytes"),
                    timestamps=q.get("timestamps") == "true",
                )
                return 200, text.encode(), "text/plain"
        raise method_not_allowed()

    @staticmethod
    def _int_param(q: dict[str, str], key: str) -> int | None:
        if key not in q or q[key] == "":
            return None
        try:
            return int(q[key])
        except ValueError as e:
            raise bad_request(f"invalid value for {key}: {q[key]!r}") from e

    @staticmethod
    def _json(body: bytes, res: Resource) -> Obj:
        try:
            data = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as e:
            raise bad_request(
                f'{res.kind} in version "{res.api_version.split("/")[-1]}" cannot be handled as a {res.kind}: {e}'
            ) from e
        if not isinstance(data, dict):
            raise bad_request(
                f'{res.kind} in version "{res.api_version.split("/")[-1]}" cannot be handled as a {res.kind}: the body must be a JSON object'
            )
        if data.get("apiVersion") not in (None, res.api_version):
            raise bad_request(
                f"the API version in the data ({data['apiVersion']}) does not match the expected API version ({res.api_version})"
            )
        if data.get("kind") not in (None, res.kind):
            raise bad_request(f"the kind in the data ({data['kind']}) does not match the expected kind ({res.kind})")
        return data

    def _list(self, res: Resource, ns: str | None, q: dict[str, str]) -> bytes:
        c = self.cluster
        reqs = parse_label_selector(q.get("labelSelector"))
        freqs = parse_field_selector(q.get("fieldSelector"), _FIELDS[res], res.kind, res.api_version)
        limit = self._int_param(q, "limit")
        if limit is not None and limit <= 0:
            limit = None
        start = decode_continue(q["continue"]) if q.get("continue") else None
        items, token, remaining = c.list_objects(res, ns, reqs, freqs, start, limit)
        meta: Obj = {"resourceVersion": str(c.rv)}
        if token:
            meta["continue"] = token
            if remaining is not None:
                meta["remainingItemCount"] = remaining
        kind, api_version = _LIST_KINDS[res]
        return dumps({"kind": kind, "apiVersion": api_version, "metadata": meta, "items": items})

    def _delete(self, res: Resource, ns: str, name: str, q: dict[str, str], body: bytes) -> bytes:
        opts: Obj = {}
        if body.strip():
            try:
                parsed = json.loads(body)
            except ValueError as e:
                raise bad_request(f"invalid DeleteOptions: {e}") from e
            if isinstance(parsed, dict):
                opts = parsed
        policy = q.get("propagationPolicy") or opts.get("propagationPolicy")
        orphan = q.get("orphanDependents", opts.get("orphanDependents"))
        if policy is None and orphan is not None:
            policy = "Orphan" if str(orphan).lower() == "true" else "Background"
        pre = opts.get("preconditions")
        if res is JOBS:
            result = self.cluster.delete_job(ns, name, policy=policy, preconditions=pre)
            return dumps(result if result.get("kind") == "Status" else _with_kind(JOBS, result))
        grace = self._int_param(q, "gracePeriodSeconds")
        if grace is None and opts.get("gracePeriodSeconds") is not None:
            grace = int(opts["gracePeriodSeconds"])
        return dumps(_with_kind(PODS, self.cluster.delete_pod(ns, name, grace=grace, preconditions=pre)))

    def _patch_job(self, ns: str, name: str, body: bytes, ctype: str) -> Obj:
        cur = self.cluster.jobs.get(ns, name)
        if cur is None:
            raise not_found(JOBS, name)
        try:
            patch = json.loads(body or b"null")
        except ValueError as e:
            raise bad_request(f"error decoding patch: {e}") from e
        kind = ctype.split(";", maxsplit=1)[0].strip().lower()
        base = copy.deepcopy(_with_kind(JOBS, cur))
        if kind == "application/json-patch+json":
            patched = json_patch(base, patch)
        elif kind == "application/merge-patch+json":
            patched = merge_patch(base, patch)
        elif kind == "application/strategic-merge-patch+json":
            patched = strategic_merge_patch(base, patch)
        else:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {kind or 'none'})",
            )
        if not isinstance(patched, dict):
            raise bad_request("the patch did not produce an object")
        new_rv = (patched.get("metadata") or {}).get("resourceVersion")
        if new_rv is not None and new_rv != cur["metadata"]["resourceVersion"]:
            raise conflict(JOBS, name)
        return self.cluster.update_job(ns, name, patched, expect_rv=None, require_rv=False)
