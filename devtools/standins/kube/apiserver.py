"""A Kubernetes API stand-in over real HTTPS on loopback: a fake kube-apiserver with a Job
controller, a scheduler and a simulated AKS virtual node (Azure Container Instances).

The official ``kubernetes`` client talks to it through a kubeconfig::

    with KubeStandIn() as kube:
        cfg = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config_from_dict(kube.kubeconfig_dict(), client_configuration=cfg)
        batch = kubernetes.client.BatchV1Api(kubernetes.client.ApiClient(cfg))

Standard library only (plus the trustme CA from ``devtools.tls``). Objects, errors and
status transitions follow kube-apiserver 1.33 where the app depends on them; see
``cluster`` and ``controllers/`` for the controllers, ``pod_script`` for the script language that
pods "run".
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from devtools.standins.kube.cluster import Cluster
from devtools.standins.kube.faults import FaultInjection, RequestMetrics, _FailRule, _Rates
from devtools.standins.kube.handlers import RequestHandlers, _with_kind
from devtools.standins.kube.nodes import SYSTEM_NODE, VIRTUAL_NODE
from devtools.standins.kube.objects import (
    JOBS,
    NODES,
    PODS,
    Obj,
    Resource,
    dumps,
)
from devtools.standins.kube.seed import seed_finished_jobs
from devtools.standins.kube.server import _TLSServer
from devtools.standins.virtual_node.provider import AciProvider, AciSettings
from devtools.tls import shared_ca

__all__ = ["SYSTEM_NODE", "VIRTUAL_NODE", "AciSettings", "KubeStandIn"]


class KubeStandIn(RequestHandlers, FaultInjection, RequestMetrics):
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

    def aci_fail_logs(self, times: int = 1, *, pod_prefix: str = "") -> None:
        """The next ``times`` log reads of matching pods on the virtual node fail with the raw ARM
        error azure-aci passes through, a 500 from the API server (``AciProvider.fail_logs``)."""
        with self.cluster.lock:
            self.cluster.aci.fail_logs(times, pod_prefix=pod_prefix)

    def virtual_node_down(self) -> None:
        """virtual-kubelet stops: Unknown after the grace period, evictions 300 s later, pods
        stuck Terminating (``controllers/nodelifecycle``). Durations are simulated seconds."""
        self.cluster.virtual_node_down()

    def virtual_node_up(self) -> None:
        """virtual-kubelet is back: it deletes the groups of deleted pods and reports the rest."""
        self.cluster.virtual_node_up()

    def pause_job_controller(self, paused: bool = True) -> None:
        """Hold the Job controller's syncs: kube-controller-manager restarting or changing leader
        (its controllers run only while it holds the leader lease: ``--leader-elect``, lease 15 s,
        renew deadline 10 s, retry 2 s — cmd/kube-controller-manager ``leaderElectAndRun``), so
        the window a batched sync (``syncJobBatchPeriod``, 1 s) opens lasts as long as a test
        needs. Syncs missed meanwhile run when it is released."""
        with self.cluster.lock:
            self.cluster.job_controller_paused = paused

    def fail_job_status_updates(self, times: int = 1) -> None:
        """The Job controller's next ``times`` status updates that move pods out of
        ``uncountedTerminatedPods`` fail (409 Conflict: another client wrote the Job since the
        controller's first update of the sync). The pods' finalizers are already removed, so the
        Job shows them uncounted, not in ``succeeded``/``failed``, until a retry after the rate
        limiter's back-off succeeds (``controllers/job.py`` ``_track_and_remove_finalizers``)."""
        with self.cluster.lock:
            self.cluster.job_status_update_faults = times

    def expire_continue_tokens(self) -> None:
        """etcd compaction now: outstanding continue tokens answer 410 Expired."""
        self.cluster.expire_continue_tokens()

    def add_virtual_node(self, ready: bool = True) -> None:
        self.cluster.add_virtual_node(ready)

    def set_node_ready(self, name: str, ready: bool) -> None:
        self.cluster.set_node_ready(name, ready)

    def remove_virtual_node(self) -> None:
        self.cluster.remove_virtual_node()

    def power(self, state: str) -> None:
        """What a stopped / started AKS cluster looks like from outside (wire it to the ARM
        stand-in's ``on_power_changed``). "Stopped": the control plane is gone (the listener
        closes; learn.microsoft.com/azure/aks/start-stop-cluster: stopping "stops the control
        plane and agent nodes entirely, while maintaining all object and cluster state") and the
        virtual node is NotReady. "Running": the same state is served again and the virtual node
        is Ready (how long the addon takes to re-register it is not documented; here at once)."""
        if state == "Stopped":
            if VIRTUAL_NODE in self.cluster.nodes:
                self.cluster.set_node_ready(VIRTUAL_NODE, False)
            self._unserve()
        else:
            if self._server is None:
                self._serve()
            if VIRTUAL_NODE in self.cluster.nodes:
                self.cluster.set_node_ready(VIRTUAL_NODE, True)

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

    def secrets(self, namespace: str) -> list[dict[str, Any]]:
        """The Secrets of ``namespace`` as the API would return them (data base64)."""
        with self.cluster.lock:
            return self.cluster.list_secrets(namespace)

    def set_secret(self, namespace: str, body: dict[str, Any]) -> None:
        """Create a Secret behind the app's back (tests: a leftover, a hand-made pull secret)."""
        with self.cluster.lock:
            self.cluster.create_secret(namespace, body)

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
