"""The garbage collector, the TTL-after-finished controller and PodGC (kube-controller-manager
``pkg/controller/garbagecollector``, ``ttlafterfinished``, ``podgc``): deletion propagation,
finalizers, expired finished Jobs and pods of a node that is gone."""

from __future__ import annotations

import copy
import time

from devtools.standins.kube.controllers.nodelifecycle import VK_DELETE_SECONDS
from devtools.standins.kube.nodes import VIRTUAL_NODE
from devtools.standins.kube.objects import Obj
from devtools.standins.kube.state import (
    JOB_NAME,
    JOB_TRACKING_FINALIZER,
    ClusterState,
    _is_terminal,
)
from devtools.standins.metav1_time import now_rfc3339


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
                        self._delete_now(ns, name, count_failure=True)

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
            self.collect_secret_dependents()  # type: ignore[attr-defined]  # kube/secrets.py

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
            self._mark_dirty_batched(ns, job_name)  # a pod event: enqueueSyncJobBatched

    def _terminate_pod(self, ns: str, name: str, *, grace: int | None, count_failure: bool) -> Obj | None:
        """A graceful pod DELETE (what the Job controller, the garbage collector, the taint manager
        and the app send). kube-apiserver removes at once a pod that is not bound to a node or
        has finished (``pkg/registry/core/pod/strategy.go CheckGracefulDelete``: grace 0); else it
        only sets ``deletionTimestamp`` and the node confirms: the kubelet once the containers are
        killed, virtual-kubelet once azure-aci deleted the container group (``node/pod.go
        deletePod``) — never while it is down (``nodelifecycle``). The Job controller counts a
        deleted pod that did not succeed as failed at once (``job_controller.go isPodFailed``).
        Returns the pod as the DELETE answers it."""
        pod = self.pods.get(ns, name)
        if pod is None:
            return None
        md = pod["metadata"]
        node = (pod.get("spec") or {}).get("nodeName")
        if md.get("deletionTimestamp"):
            return pod
        if not node or _is_terminal(pod) or grace == 0:
            out = copy.deepcopy(pod)
            out["metadata"]["deletionTimestamp"] = now_rfc3339()
            out["metadata"]["deletionGracePeriodSeconds"] = 0
            kept = self._delete_now(ns, name, count_failure=count_failure)
            if kept is not None:
                return copy.deepcopy(kept)
            out["metadata"]["resourceVersion"] = str(self._rv)
            return out
        md["deletionTimestamp"] = now_rfc3339()
        md["deletionGracePeriodSeconds"] = 30 if grace is None else grace
        self._touch(pod)
        owner = self._owner_uid(pod)
        st = self._states.get(owner) if owner else None
        if count_failure and st is not None and md["uid"] not in st.counted:
            st.counted.add(md["uid"])
            self._count_failure(st, pod, time.monotonic())
        self._job_dirty_for(pod)
        if node == VIRTUAL_NODE:
            if not self._vk_down:
                self._timer(VK_DELETE_SECONDS * self.time_scale, "vk-delete", ns, name, md["uid"])
        else:
            # The kubelet stops the containers and confirms; the stand-in's containers stop at once.
            self._timer(0.0, "kubelet-delete", ns, name, md["uid"])
        return copy.deepcopy(pod)

    def _kubelet_delete(self, key: tuple[str, ...]) -> None:
        pod = self.pods.get(key[0], key[1])
        if pod is not None and pod["metadata"]["uid"] == key[2]:
            self._delete_now(key[0], key[1], count_failure=False)

    def _delete_now(self, ns: str, name: str, *, count_failure: bool) -> Obj | None:
        """A DELETE with grace 0: the node's confirmation (kubelet, virtual-kubelet once the
        container group is gone), PodGC, or the API server's own for a pod that is not running.
        The object goes at once unless finalizers hold it: then it stays, with
        ``deletionTimestamp`` and ``deletionGracePeriodSeconds: 0``, until the last finalizer is
        removed (apiserver ``pkg/registry/generic/registry/store.go`` ``Delete`` →
        ``updateForGracefulDeletionAndFinalizers``; removal in ``Update`` when
        ``ShouldDeleteDuringUpdate``). Returns the pod if it stays."""
        pod = self.pods.get(ns, name)
        if pod is None:
            return None
        md = pod["metadata"]
        if not md.get("finalizers"):
            self._remove_pod(ns, name, count_failure=count_failure)
            return None
        if not md.get("deletionTimestamp") or md.get("deletionGracePeriodSeconds") != 0:
            md["deletionTimestamp"] = md.get("deletionTimestamp") or now_rfc3339()
            md["deletionGracePeriodSeconds"] = 0
            self._touch(pod)
        if (pod.get("spec") or {}).get("nodeName") == VIRTUAL_NODE:
            self.aci.delete(ns, name)  # virtual-kubelet confirms only after deleting the group
        owner = self._owner_uid(pod)
        st = self._states.get(owner) if owner else None
        if count_failure and st is not None and not _is_terminal(pod) and md["uid"] not in st.counted:
            st.counted.add(md["uid"])
            self._count_failure(st, pod, time.monotonic())
        self._job_dirty_for(pod)
        return pod

    def _remove_finalizer(self, pod: Obj, finalizer: str = JOB_TRACKING_FINALIZER) -> None:
        """A PATCH that removes one finalizer (the Job controller's
        ``removeTrackingFinalizerPatch``). A pod whose deletion was confirmed (grace 0) and holds
        no other finalizer goes now (registry ``store.go`` ``ShouldDeleteDuringUpdate``)."""
        md = pod["metadata"]
        fins = [f for f in md.get("finalizers") or [] if f != finalizer]
        if fins == list(md.get("finalizers") or []):
            return
        if fins:
            md["finalizers"] = fins
        else:
            md.pop("finalizers", None)
        self._touch(pod)
        if not fins and md.get("deletionTimestamp") and md.get("deletionGracePeriodSeconds") == 0:
            self._remove_pod(md["namespace"], md["name"], count_failure=False)

    def _collect_orphans(self) -> None:
        # Background deletes: the owner is gone, the garbage collector deletes its pods (a normal,
        # graceful DELETE: pkg/controller/garbagecollector attemptToDeleteItem).
        for uid, ns in list(self._gc_owners.items()):
            del self._gc_owners[uid]
            for pname in sorted(self._pods_by_owner.pop(uid, set())):
                pod = self.pods.get(ns, pname)
                if pod is not None:
                    # The Job is gone: the Job controller's orphan worker removes the tracking
                    # finalizer (job_controller.go deleteJob → cleanupPodFinalizers,
                    # syncOrphanPod).
                    self._remove_finalizer(pod)
                self._terminate_pod(ns, pname, grace=None, count_failure=False)

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
