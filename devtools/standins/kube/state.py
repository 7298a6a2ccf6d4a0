"""The state every part of the stand-in's cluster shares (etcd as the controllers see it): the stored
objects, the resourceVersion counter, the timer heap and the Job controller's per-Job bookkeeping.
Everything is guarded by ``lock``; ``cluster.Cluster`` builds it, the controllers read and move it.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field

from devtools.standins.kube.objects import Obj
from devtools.standins.kube.store import Table
from devtools.standins.metav1_time import now_rfc3339
from devtools.standins.virtual_node.provider import AciProvider

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
"""The Job controller puts it on every pod it creates and removes it once the pod's end is
recorded in ``uncountedTerminatedPods`` (``batch.JobTrackingFinalizer``; job_controller.go
``manageJob`` → ``appendJobCompletionFinalizerIfNotFound``, ``trackJobStatusAndRemoveFinalizers``)."""
SYNC_JOB_BATCH_PERIOD = 1.0
"""``syncJobBatchPeriod`` (job_controller.go: ``time.Second``): pod events and Job status updates
enqueue the Job with this delay (``enqueueSyncJobBatched``), so one sync sees them together.
Simulated seconds here (times ``time_scale``)."""
JOB_API_BACKOFF = (1.0, 60.0)
"""A sync that failed is retried after ``DefaultJobApiBackOff`` 1 s doubling to ``MaxJobApiBackOff``
1 min (job_controller.go; ``workqueue.NewTypedItemExponentialFailureRateLimiter``). Simulated s."""


@dataclass
class JobState:
    """What the real controller keeps in pod finalizers / uncountedTerminatedPods."""

    uid: str
    counted: set[str] = field(default_factory=set)  # pod uids already in succeeded/failed
    succeeded: int = 0
    failed: int = 0
    completed: set[int] = field(default_factory=set)
    index_failures: dict[int, int] = field(default_factory=dict)
    failed_indexes: set[int] = field(default_factory=set)
    attempts: dict[int, int] = field(default_factory=dict)  # index (-1 NonIndexed) → pods started
    last_failure_mono: float = 0.0
    deadline_hit: bool = False
    finished_mono: float | None = None
    terminating: int = 0  # status.terminating as the last sync wrote it
    # status.uncountedTerminatedPods: pod uids whose end is counted in ``succeeded``/``failed``
    # above (the controller's jobCtx) but not yet in the published counters, because the status
    # update that moves them (after the pods' finalizers are removed) has not happened.
    uncounted_succeeded: list[str] = field(default_factory=list)
    uncounted_failed: list[str] = field(default_factory=list)
    sync_failures: int = 0  # consecutive failed syncs: the rate limiter's exponent


def _is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _pod_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


class ClusterState:
    """The shared store and bookkeeping. ``Cluster.__init__`` sets every attribute below."""

    lock: threading.RLock
    pod_start_seconds: float | None
    time_scale: float
    aci: AciProvider
    pod_retry_backoff_seconds: float
    _rv: int
    namespaces: dict[str, Obj]
    nodes: dict[str, Obj]
    jobs: Table
    pods: Table
    _states: dict[str, JobState]
    _pods_by_owner: dict[str, set[str]]  # job uid → pod names (same namespace)
    _dirty: dict[tuple[str, str], None]
    _timers: list[tuple[float, int, str, tuple[str, ...]]]
    _seq: itertools.count[int]
    _to_schedule: dict[tuple[str, str], None]
    _unschedulable: set[tuple[str, str]]
    _gc_owners: dict[str, str]  # uid → namespace, for Background deletes
    _background_held: set[str]  # uids deleted with Background while finalizers held them
    _ip_seq: itertools.count[int]
    _seed_seq: dict[str, int]
    _runtime_attempt: dict[tuple[str, str], int]  # pod → attempt number for its index
    _vk_down: bool  # virtual-kubelet stopped (controllers/nodelifecycle)
    _pod_ips: dict[tuple[str, str], str]  # pod bound to the virtual node → its IP until created
    _vk_deferred: list[tuple[str, tuple[str, ...]]]  # provider events held while it is down
    job_controller_paused: bool  # kube-controller-manager's Job controller not syncing (test knob)
    _batched: dict[tuple[str, str], float]  # Job → monotonic time its batched sync is due
    job_status_update_faults: int  # status updates moving uncounted pods that fail (test knob)

    # ------------------------------------------------------------------ bookkeeping

    def next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    @property
    def rv(self) -> int:
        return self._rv

    def _touch(self, obj: Obj) -> None:
        obj["metadata"]["resourceVersion"] = self.next_rv()

    def _timer(self, delay: float, kind: str, *key: str) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), kind, key))

    # The provider's view of the cluster (virtual_node.provider.Host).
    def timer(self, delay: float, kind: str, *key: str) -> None:
        self._timer(delay, kind, *key)

    def pod_changed(self, pod: Obj) -> None:
        self._touch(pod)
        self._job_dirty_for(pod)

    def _mark_dirty(self, ns: str, name: str) -> None:
        """Sync the Job on the next tick (``enqueueSyncJobImmediately``: Job created, spec changed,
        deleted; a deadline or back-off timer that fired)."""
        self._dirty[(ns, name)] = None

    def _mark_dirty_batched(self, ns: str, name: str, delay: float = SYNC_JOB_BATCH_PERIOD) -> None:
        """Sync the Job ``delay`` simulated seconds from now, or earlier if it is already due then:
        pod events and the controller's own status updates (``enqueueSyncJobBatched``; the
        delaying workqueue keeps the earliest time of a key already waiting, client-go
        ``util/workqueue/delaying_queue.go`` ``insert``)."""
        due = time.monotonic() + delay * self.time_scale
        key = (ns, name)
        if key not in self._batched or due < self._batched[key]:
            self._batched[key] = due

    def _new_meta(self, name: str, ns: str | None, meta_in: Obj) -> Obj:
        md: Obj = {"name": name}
        if meta_in.get("generateName"):
            md["generateName"] = meta_in["generateName"]
        if ns is not None:
            md["namespace"] = ns
        md["uid"] = str(uuid.uuid4())
        md["resourceVersion"] = self.next_rv()
        md["generation"] = 1
        md["creationTimestamp"] = now_rfc3339()
        for k in ("labels", "annotations", "ownerReferences", "finalizers"):
            if meta_in.get(k):
                md[k] = copy.deepcopy(meta_in[k])
        return md

    @staticmethod
    def _owner_uid(pod: Obj) -> str | None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "Job":
                return str(ref.get("uid"))
        return None

    @staticmethod
    def _pod_index(pod: Obj) -> int:
        v = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)
        return int(v) if v is not None else -1

    def _job_of(self, pod: Obj) -> Obj | None:
        name = (pod["metadata"].get("labels") or {}).get(JOB_NAME)
        return self.jobs.get(pod["metadata"]["namespace"], name) if name else None

    def _job_dirty_for(self, pod: Obj) -> None:
        jname = (pod["metadata"].get("labels") or {}).get(JOB_NAME)
        if jname and self._owner_uid(pod):
            self._mark_dirty_batched(pod["metadata"]["namespace"], jname)

    @staticmethod
    def _finished(job: Obj) -> bool:
        return any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in job["status"].get("conditions") or []
        )
