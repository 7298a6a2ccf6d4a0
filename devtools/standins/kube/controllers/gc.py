"""The garbage collector, the TTL-after-finished controller and PodGC (kube-controller-manager
``pkg/controller/garbagecollector``, ``ttlafterfinished``, ``podgc``): deletion propagation,
finalizers, expired finished Jobs and pods of a node that is gone."""

from __future__ import annotations

import time

from devtools.standins.kube.nodes import VIRTUAL_NODE
from devtools.standins.kube.objects import (
    Obj,
)
from devtools.standins.kube.state import (
    JOB_NAME,
    ClusterState,
    _is_terminal,
)
from devtools.standins.metatime import now_rfc3339


class GarbageCollector(ClusterState):
    """Removes Jobs and pods: propagation policies, TTL after finished, orphaned pods."""

    def remove_virtual_node(self) -> None:
        with self.lock:
            if self.nodes.pop(VIRTUAL_NODE, None) is None:
                return
            # PodGC: pods bound to a node that no longer exists are deleted.
            for ns in self.pods.namespaces():
                for name, pod in list(self.pods.by_ns[ns].items()):
                    if (pod.get("spec") or {}).get("nodeName") == VIRTUAL_NODE:
                        self._remove_pod(ns, name, count_failure=True)

    def _mark_for_deletion(self, job: Obj, finalizer: str) -> None:
        md = job["metadata"]
        md["deletionTimestamp"] = now_rfc3339()
        md["deletionGracePeriodSeconds"] = 0
        md["finalizers"] = [*(md.get("finalizers") or []), finalizer]
        self._touch(job)
        self._mark_dirty(md["namespace"], md["name"])

    def _remove_job(self, ns: str, name: str) -> None:
        job = self.jobs.remove(ns, name)
        if job is not None:
            self.next_rv()
            self._states.pop(job["metadata"]["uid"], None)

    def _remove_pod(self, ns: str, name: str, *, count_failure: bool) -> None:
        pod = self.pods.remove(ns, name)
        if pod is None:
            return
        self.next_rv()
        key = (ns, name)
        if (pod.get("spec") or {}).get("nodeName") == VIRTUAL_NODE:
            self.aci.delete(ns, name)
        self._runtime.pop(key, None)
        self._runtime_attempt.pop(key, None)
        self._to_schedule.pop(key, None)
        self._unschedulable.discard(key)
        owner = self._owner_uid(pod)
        if owner is None:
            return
        names = self._pods_by_owner.get(owner)
        if names is not None:
            names.discard(name)
        st = self._states.get(owner)
        if st is None:
            return
        job_name = pod["metadata"].get("labels", {}).get(JOB_NAME) or next(
            (o.get("name") for o in pod["metadata"].get("ownerReferences") or [] if o.get("uid") == owner), None
        )
        if count_failure and not _is_terminal(pod) and pod["metadata"]["uid"] not in st.counted:
            st.counted.add(pod["metadata"]["uid"])
            self._count_failure(st, pod, time.monotonic())
        if job_name:
            self._mark_dirty(ns, job_name)

    def _collect_orphans(self) -> None:
        # Background deletes: the owner is gone, its pods are collected.
        for uid, ns in list(self._gc_owners.items()):
            del self._gc_owners[uid]
            for pname in sorted(self._pods_by_owner.pop(uid, set())):
                self._remove_pod(ns, pname, count_failure=False)

    def _schedule_ttl(self, job: Obj) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        st = self._states.get(job["metadata"]["uid"])
        finished = st.finished_mono if st is not None and st.finished_mono is not None else time.monotonic()
        delay = max(0.0, finished + ttl * self.time_scale - time.monotonic())
        self._timer(delay, "ttl", job["metadata"]["namespace"], job["metadata"]["name"], job["metadata"]["uid"])

    def _ttl_expired(self, key: tuple[str, ...]) -> None:
        job = self.jobs.get(key[0], key[1])
        if (
            job is not None
            and job["metadata"]["uid"] == key[2]
            and self._finished(job)
            and not job["metadata"].get("deletionTimestamp")
        ):
            ttl = job["spec"].get("ttlSecondsAfterFinished")
            st = self._states.get(key[2])
            if ttl is not None and (
                st is None
                or st.finished_mono is None
                or time.monotonic() >= st.finished_mono + ttl * self.time_scale - 1e-3
            ):
                self._mark_for_deletion(job, "foregroundDeletion")  # as the TTL-after-finished controller does
