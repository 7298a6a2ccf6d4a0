"""The virtual node going down and coming back: virtual-kubelet stops (its pod stays, so do the
container groups in ACI), the node lifecycle controller notices, the taint-eviction controller
evicts, and nothing confirms a deletion until virtual-kubelet is back.

Rules, with their sources:

* virtual-kubelet posts the node's status (``node/node.go`` ``NodeController`` lease and status
  updates); when it stops, kube-controller-manager's node lifecycle controller sets the node's
  conditions to ``Unknown`` ("Kubelet stopped posting node status.") after
  ``--node-monitor-grace-period`` (40 s up to 1.31, 50 s from 1.32), adds the taints
  ``node.kubernetes.io/unreachable`` ``NoSchedule`` and ``NoExecute`` and marks the node's pods
  not Ready (kubernetes ``pkg/controller/nodelifecycle/node_lifecycle_controller.go``
  ``monitorNodeHealth``, ``markNodeAsReachable``/``doNoExecuteTaintingPass``;
  ``pkg/controller/util/node/controller_utils.go MarkPodsNotReady``).
* Every pod tolerates ``unreachable:NoExecute`` for 300 s (the DefaultTolerationSeconds admission
  plugin, ``plugin/pkg/admission/defaulttolerationseconds``; the Job controller stand-in adds
  them at creation). Then the taint-eviction controller adds the ``DisruptionTarget`` condition
  (reason ``DeletionByTaintManager``) and deletes the pod (``pkg/controller/tainteviction/
  taint_eviction.go addConditionAndDeletePod``): a graceful delete, so the pod only gets a
  ``deletionTimestamp``. Only the node's kubelet confirms a deletion; with virtual-kubelet down
  the pod stays Terminating indefinitely.
* While down, nothing the provider does reaches the API: container groups that finish are not
  reported, pods bound in the grace period are not created, log reads fail (the API server dials
  the node's kubelet port; the dial error is a 500 InternalError,
  ``apiserver/pkg/registry/generic/rest/streamer.go`` + ``pkg/registry/core/pod/rest/log.go``).
* When virtual-kubelet is back, its pod controller deletes the container group of every pod that
  has a ``deletionTimestamp`` and then the pod (virtual-kubelet ``node/pod.go deletePod``,
  ``node/podcontroller.go``), and reports the groups' current state; the node lifecycle
  controller removes the taints once the node posts Ready.
"""

from __future__ import annotations

from devtools.standins.kube.nodes import VIRTUAL_NODE
from devtools.standins.kube.objects import ApiError, Obj
from devtools.standins.kube.state import ClusterState, _is_terminal
from devtools.standins.metav1_time import now_rfc3339

UNREACHABLE = "node.kubernetes.io/unreachable"
NODE_MONITOR_GRACE_SECONDS = 50.0
"""kube-controller-manager ``--node-monitor-grace-period`` default from 1.32 (40 s before)."""
DEFAULT_TOLERATION_SECONDS = 300
"""DefaultTolerationSeconds admission plugin: not-ready / unreachable NoExecute, 300 s."""
VK_DELETE_SECONDS = 1.0
"""Simulated seconds from a pod's deletion to virtual-kubelet's confirmation once the container
group is deleted (one ARM DELETE; no source gives a figure: the stand-in's choice)."""


class NodeLifecycle(ClusterState):
    """``virtual_node_down``/``virtual_node_up`` and what they set off."""

    def virtual_node_down(self) -> None:
        """virtual-kubelet stops. The node's Ready goes Unknown after the grace period."""
        with self.lock:
            if self._vk_down or VIRTUAL_NODE not in self.nodes:
                return
            self._vk_down = True
            self._timer(NODE_MONITOR_GRACE_SECONDS * self.time_scale, "node-unknown", VIRTUAL_NODE)

    def virtual_node_up(self) -> None:
        """virtual-kubelet is back: deletions confirmed, missed status replayed, taints gone."""
        with self.lock:
            if not self._vk_down:
                return
            self._vk_down = False
            deferred, self._vk_deferred = self._vk_deferred, []
            for kind, key in deferred:
                self._fire(kind, key)
            for ns in self.pods.namespaces():
                for name, pod in list(self.pods.by_ns[ns].items()):
                    if pod["spec"].get("nodeName") == VIRTUAL_NODE and pod["metadata"].get("deletionTimestamp"):
                        self._timer(VK_DELETE_SECONDS * self.time_scale, "vk-delete", ns, name, pod["metadata"]["uid"])
            node = self.nodes.get(VIRTUAL_NODE)
            if node is not None:
                self._set_reachable(node, reachable=True)

    @property
    def virtual_node_is_down(self) -> bool:
        return self._vk_down

    def _vk_defer(self, kind: str, key: tuple[str, ...]) -> bool:
        """Hold a provider event while virtual-kubelet is down (replayed by ``virtual_node_up``)."""
        if not self._vk_down:
            return False
        self._vk_deferred.append((kind, key))
        return True

    def _node_unknown(self) -> None:
        node = self.nodes.get(VIRTUAL_NODE)
        if node is None or not self._vk_down:
            return
        self._set_reachable(node, reachable=False)
        for ns in self.pods.namespaces():
            for pod in list(self.pods.by_ns[ns].values()):
                if pod["spec"].get("nodeName") != VIRTUAL_NODE or _is_terminal(pod):
                    continue
                self._mark_pod_not_ready(pod)
                seconds = _unreachable_toleration(pod)
                if seconds is not None:
                    md = pod["metadata"]
                    self._timer(seconds * self.time_scale, "evict", ns, md["name"], md["uid"])

    def _set_reachable(self, node: Obj, *, reachable: bool) -> None:
        now = now_rfc3339()
        for cond in node["status"]["conditions"]:
            if reachable:
                cond["status"] = "True" if cond["type"] == "Ready" else "False"
                cond["reason"] = "KubeletReady" if cond["type"] == "Ready" else cond["reason"]
            else:
                cond["status"] = "Unknown"
                cond["reason"] = "NodeStatusUnknown"
                cond["message"] = "Kubelet stopped posting node status."
            cond["lastTransitionTime"] = now
        if reachable:
            next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["message"] = (
                "kubelet is posting ready status"
            )
        taints = [t for t in node["spec"].get("taints") or [] if t.get("key") != UNREACHABLE]
        if not reachable:
            taints += [
                {"key": UNREACHABLE, "effect": "NoSchedule", "timeAdded": now},
                {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": now},
            ]
        node["spec"]["taints"] = taints
        self._touch(node)
        self._requeue_unschedulable()

    def _mark_pod_not_ready(self, pod: Obj) -> None:
        now = now_rfc3339()
        for cond in pod["status"].get("conditions") or []:
            if cond["type"] == "Ready" and cond["status"] != "False":
                cond["status"] = "False"
                cond["lastTransitionTime"] = now
        self._touch(pod)
        self._job_dirty_for(pod)

    def _evict(self, key: tuple[str, ...]) -> None:
        pod = self.pods.get(key[0], key[1])
        if pod is None or pod["metadata"]["uid"] != key[2] or not self._vk_down or _is_terminal(pod):
            return
        if pod["metadata"].get("deletionTimestamp"):
            return
        conds = pod["status"].setdefault("conditions", [])
        conds.append(
            {
                "type": "DisruptionTarget",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
            }
        )
        self._terminate_pod(key[0], key[1], grace=30, count_failure=True)

    def _vk_delete(self, key: tuple[str, ...]) -> None:
        """virtual-kubelet deletes the container group, then the pod (grace 0)."""
        pod = self.pods.get(key[0], key[1])
        if pod is None or pod["metadata"]["uid"] != key[2]:
            return
        if self._vk_down:
            self._vk_deferred.append(("vk-delete", key))
            return
        self._delete_now(key[0], key[1], count_failure=False)

    def _node_dial_error(self, ns: str, name: str, container: str) -> ApiError:
        """What the API server answers for a log read when the node's kubelet does not answer."""
        ip = self.nodes[VIRTUAL_NODE]["status"]["addresses"][0]["address"]
        return ApiError(
            500,
            f'Get "https://{ip}:10250/containerLogs/{ns}/{name}/{container}": dial tcp {ip}:10250: '
            "connect: connection refused",
            details={},
        )


def _unreachable_toleration(pod: Obj) -> int | None:
    """Seconds the pod tolerates ``unreachable:NoExecute`` (None: forever; 0: not at all)."""
    for tol in pod["spec"].get("tolerations") or []:
        if tol.get("effect") not in (None, "", "NoExecute"):
            continue
        if (tol.get("operator") == "Exists" and not tol.get("key")) or tol.get("key") == UNREACHABLE:
            seconds = tol.get("tolerationSeconds")
            return None if seconds is None else int(seconds)
    return 0
