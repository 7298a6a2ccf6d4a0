"""The stand-in's cluster: the stored objects (``state``, ``store``) with the API server's registry
(``registry``) and the controllers that move them (``controllers/``: Job controller, scheduler,
garbage collector + TTL + PodGC, kubelet), composed into one ``Cluster`` over one store and lock.
Pods bound to the virtual node are handed to ``virtual_node.provider.AciProvider`` (virtual-kubelet
+ azure-aci + ACI); the containers' "script language" lives in ``pod_script``.

No HTTP here: ``apiserver.KubeStandIn`` serves this over HTTPS. Everything runs under one re-entrant
lock; the controller loop (``tick``) takes it in short batches so request threads are never starved.

Durations in specs and scripts (``sleep``, ``activeDeadlineSeconds``, ``ttlSecondsAfterFinished``,
pod start, retry back-off) are simulated seconds: they are multiplied by ``time_scale`` to get
wall-clock seconds. Timestamps in objects are real wall-clock times (RFC 3339, second precision).
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable

from devtools.standins.kube.controllers.gc import GarbageCollector
from devtools.standins.kube.controllers.job import JobController
from devtools.standins.kube.controllers.kubelet import Kubelet, PodRuntime
from devtools.standins.kube.controllers.nodelifecycle import NodeLifecycle
from devtools.standins.kube.controllers.scheduler import Scheduler
from devtools.standins.kube.nodes import VIRTUAL_NODE, system_node_obj, virtual_node_obj
from devtools.standins.kube.objects import JOBS, NAMESPACES, NODES, PODS, ApiError, Obj, Resource
from devtools.standins.kube.registry import Registry
from devtools.standins.kube.secrets import SecretRegistry
from devtools.standins.kube.selectors import (
    FieldRequirement,
    Requirement,
    encode_continue,
    fields_match,
    labels_match,
)
from devtools.standins.kube.state import (
    JobState,
)
from devtools.standins.kube.store import Table
from devtools.standins.metav1_time import now_rfc3339
from devtools.standins.virtual_node.provider import AciProvider, AciSettings

NOT_READY_TAINT_KEY = "node.kubernetes.io/not-ready"
COMPACTION_SECONDS = 300.0
"""kube-apiserver ``--etcd-compaction-interval`` default: a continue token lives about this long."""
MAX_LIST_SNAPSHOTS = 64
"""Snapshots kept for continuation; older ones count as compacted (410)."""


class Cluster(Registry, SecretRegistry, JobController, Scheduler, GarbageCollector, Kubelet, NodeLifecycle):
    """The stored objects plus the controllers that move them. Guard everything with ``lock``."""

    def __init__(
        self,
        *,
        namespaces: Iterable[str],
        virtual_node: bool,
        system_node: bool,
        pod_start_seconds: float | None,
        time_scale: float,
        pod_retry_backoff_seconds: float = 0.0,
        aci: AciSettings | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.pod_start_seconds = pod_start_seconds  # None: each node's own default
        self.time_scale = time_scale
        self.aci = AciProvider(aci or AciSettings(), self)
        self.pod_retry_backoff_seconds = pod_retry_backoff_seconds
        self._rv = 0
        self.namespaces: dict[str, Obj] = {}
        self.nodes: dict[str, Obj] = {}
        self.jobs = Table(JOBS)
        self.pods = Table(PODS)
        self.secrets_by_key: dict[tuple[str, str], Obj] = {}
        self._states: dict[str, JobState] = {}
        self._pods_by_owner: dict[str, set[str]] = {}  # job uid → pod names (same namespace)
        self._dirty: dict[tuple[str, str], None] = {}
        self._timers: list[tuple[float, int, str, tuple[str, ...]]] = []
        self._seq = itertools.count()
        self._to_schedule: dict[tuple[str, str], None] = {}
        self._unschedulable: set[tuple[str, str]] = set()
        self._gc_owners: dict[str, str] = {}  # uid → namespace, for Background deletes
        self._background_held: set[str] = set()  # uids deleted with Background while finalizers held them
        self._runtime: dict[tuple[str, str], PodRuntime] = {}
        self._ip_seq = itertools.count(4)
        self._seed_seq: dict[str, int] = {}
        self._runtime_attempt: dict[tuple[str, str], int] = {}  # pod → attempt number for its index
        self._vk_down = False
        self._pod_ips: dict[tuple[str, str], str] = {}  # pod bound to the virtual node → its IP
        self._vk_deferred: list[tuple[str, tuple[str, ...]]] = []
        self.job_controller_paused = False
        self._batched: dict[tuple[str, str], float] = {}
        self.job_status_update_faults = 0
        self._list_snapshots: dict[int, tuple[float, list[tuple[str, Obj]]]] = {}
        self._snapshot_seq = itertools.count(1)
        for ns in namespaces:
            self.create_namespace({"metadata": {"name": ns}})
        if system_node:
            self._put_node(self._system_node_obj())
        if virtual_node:
            self.add_virtual_node(True)

    # ------------------------------------------------------------------ nodes

    def _system_node_obj(self) -> Obj:
        return system_node_obj(self.next_rv())

    def _virtual_node_obj(self) -> Obj:
        return virtual_node_obj(self.next_rv())

    def _put_node(self, node: Obj) -> None:
        self.nodes[node["metadata"]["name"]] = node
        self._requeue_unschedulable()

    def add_virtual_node(self, ready: bool = True) -> None:
        with self.lock:
            if VIRTUAL_NODE not in self.nodes:
                self._put_node(self._virtual_node_obj())
            self.set_node_ready(VIRTUAL_NODE, ready)

    def set_node_ready(self, name: str, ready: bool) -> None:
        with self.lock:
            node = self.nodes.get(name)
            if node is None:
                raise KeyError(f"no node named {name!r}; nodes: {sorted(self.nodes)}")
            cond = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
            want = "True" if ready else "False"
            now = now_rfc3339()
            cond["lastHeartbeatTime"] = now
            if cond["status"] != want:
                cond["status"] = want
                cond["lastTransitionTime"] = now
                cond["reason"] = "KubeletReady" if ready else "KubeletNotReady"
                cond["message"] = (
                    "kubelet is posting ready status"
                    if ready
                    else "virtual-kubelet is not ready: container runtime network not ready"
                )
            taints = [t for t in node["spec"].get("taints") or [] if t.get("key") != NOT_READY_TAINT_KEY]
            if not ready:
                taints.append({"key": NOT_READY_TAINT_KEY, "effect": "NoSchedule", "timeAdded": now})
            if taints:
                node["spec"]["taints"] = taints
            else:
                node["spec"].pop("taints", None)
            self._touch(node)
            self._requeue_unschedulable()

    # ------------------------------------------------------------------ the controller loop

    def tick(self, batch: int = 200) -> None:
        """One pass of every controller. Takes the lock in batches so requests interleave."""
        with self.lock:
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, kind, key = heapq.heappop(self._timers)
                self._fire(kind, key)
            self._collect_orphans()
            for key, due in list(self._batched.items()):
                if due <= now:
                    del self._batched[key]
                    self._dirty[key] = None
            dirty = list(self._dirty)
            self._dirty.clear()
        for i in range(0, len(dirty), batch):
            with self.lock:
                for ns, name in dirty[i : i + batch]:
                    self._sync_job(ns, name)
                self._schedule_pending(batch * 4)
            time.sleep(0)
        with self.lock:
            self._schedule_pending(None)

    def _fire(self, kind: str, key: tuple[str, ...]) -> None:
        if kind in ("start", "aci-exit") and self._on_virtual_node(key) and self._vk_defer(kind, key):
            return  # ACI goes on, but nothing reaches the API until virtual-kubelet is back
        handlers: dict[str, Callable[[tuple[str, ...]], None]] = {
            "start": lambda k: self._start_pod(k[0], k[1], k[2]),
            "exit": lambda k: self._container_exit(k[0], k[1], k[2], k[3]),
            "aci-exit": self._aci_exit,
            "node-unknown": lambda _k: self._node_unknown(),
            "evict": self._evict,
            "vk-delete": self._vk_delete,
            "vk-create": self._vk_create,
            "kubelet-delete": self._kubelet_delete,
            "pullbackoff": self._pull_backoff,
            "deadline": self._deadline_passed,
            "ttl": self._ttl_expired,
            "wake": lambda k: self._mark_dirty(k[0], k[1]),
        }
        handlers[kind](key)

    def _on_virtual_node(self, key: tuple[str, ...]) -> bool:
        pod = self.pods.get(key[0], key[1])
        return pod is not None and pod["spec"].get("nodeName") == VIRTUAL_NODE

    # ------------------------------------------------------------------ listing

    def table(self, res: Resource) -> Table:
        return self.jobs if res is JOBS else self.pods

    def list_objects(
        self,
        res: Resource,
        ns: str | None,
        reqs: list[Requirement],
        freqs: list[FieldRequirement],
        start_after: str | None,
        limit: int | None,
        *,
        snapshot: int | None = None,
    ) -> tuple[list[Obj], str | None, int | None]:
        if res is NODES or res is NAMESPACES:
            src = self.nodes if res is NODES else self.namespaces
            items = [
                o
                for k, o in sorted(src.items())
                if (start_after is None or k > start_after)
                and labels_match(reqs, o["metadata"].get("labels"))
                and fields_match(freqs, o)
            ]
            if limit is not None and len(items) > limit:
                return (
                    items[:limit],
                    encode_continue(self._rv, items[limit - 1]["metadata"]["name"]),
                    len(items) - limit,
                )
            return items, None, None
        if snapshot is not None:
            return self._continue_from(snapshot, start_after, limit)
        items, key, remaining = self.table(res).page(ns, reqs, freqs, start_after, limit)
        if key is None:
            return items, None, remaining
        # Continuation pages are served from the state of the first page's resourceVersion
        # (apiserver storage/etcd3/store.go GetList reads at the token's revision): later
        # creates and deletes do not show. Kept until compaction (``expire_continue_tokens``).
        rest, _, _ = self.table(res).page(ns, reqs, freqs, key, None)
        snap = next(self._snapshot_seq)
        self._list_snapshots[snap] = (
            time.monotonic(),
            [(self._page_key(o, ns), json.loads(json.dumps(o))) for o in rest],
        )
        while len(self._list_snapshots) > MAX_LIST_SNAPSHOTS:
            self._list_snapshots.pop(min(self._list_snapshots))
        return items, encode_continue(self._rv, key, snap), remaining

    @staticmethod
    def _page_key(obj: Obj, ns: str | None) -> str:
        md = obj["metadata"]
        return str(md["name"]) if ns is not None else f"{md.get('namespace', '')}/{md['name']}"

    def _continue_from(
        self, snapshot: int, start_after: str | None, limit: int | None
    ) -> tuple[list[Obj], str | None, int | None]:
        found = self._list_snapshots.get(snapshot)
        if found is None or time.monotonic() - found[0] > COMPACTION_SECONDS * self.time_scale:
            self._list_snapshots.pop(snapshot, None)
            # etcd compacted the revision (kube-apiserver --etcd-compaction-interval, 5 min):
            # apiserver storage/etcd3/store.go answers 410 Expired (apierrors.NewResourceExpired).
            raise ApiError(
                410,
                "The provided continue parameter is too old to display a consistent list result. You can start a "
                "new list without the continue parameter, or use the continue token in this response to retrieve "
                "the remainder of the results. Continuing with the provided token results in an inconsistent list "
                "- objects that were created, modified, or deleted between the time the first chunk was returned "
                "and now may show up in the list.",
                reason="Expired",
                details={},
            )
        rest = [(k, o) for k, o in found[1] if start_after is None or k > start_after]
        if limit is None or len(rest) <= limit:
            self._list_snapshots.pop(snapshot, None)
            return [o for _, o in rest], None, None
        page = rest[:limit]
        return [o for _, o in page], encode_continue(self._rv, page[-1][0], snapshot), len(rest) - limit

    def expire_continue_tokens(self) -> None:
        """etcd compaction now: every outstanding continue token answers 410 Expired."""
        with self.lock:
            self._list_snapshots.clear()
