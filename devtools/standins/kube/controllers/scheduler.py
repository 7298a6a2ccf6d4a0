"""kube-scheduler as the stand-in needs it: node filtering by unschedulable, taints/tolerations and
node affinity, the ``PodScheduled`` condition and the binding; a pod bound to the virtual node goes
to the ACI provider (virtual-kubelet ``CreatePod``)."""

from __future__ import annotations

from devtools.standins.kube.controllers.kubelet import KUBELET_START_SECONDS, _creating_statuses
from devtools.standins.kube.nodes import VIRTUAL_NODE
from devtools.standins.kube.objects import Obj
from devtools.standins.kube.selectors import (
    match_label_selector_obj,
)
from devtools.standins.kube.state import (
    ClusterState,
    _is_terminal,
)
from devtools.standins.metav1_time import now_rfc3339


def _tolerates(tol: Obj, taint: Obj) -> bool:
    effect = tol.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    op = tol.get("operator") or "Equal"
    key = tol.get("key") or ""
    if op == "Exists":
        return key == "" or key == taint.get("key")
    return key == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or "")


def _node_affinity_ok(pod_spec: Obj, labels: dict[str, str]) -> bool:
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = (
        ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
    ) or {}
    terms = req.get("nodeSelectorTerms") or []
    if not terms:
        return True
    for term in terms:
        exprs = term.get("matchExpressions") or []
        sel = {
            "matchExpressions": [
                {"key": e.get("key"), "operator": e.get("operator"), "values": e.get("values")}
                for e in exprs
                if e.get("operator") in ("In", "NotIn", "Exists", "DoesNotExist")
            ]
        }
        if match_label_selector_obj(sel, labels):
            return True
    return False


class Scheduler(ClusterState):
    """Binds pending pods to nodes (``_schedule_pending``); unschedulable pods wait for a node change."""

    def _requeue_unschedulable(self) -> None:
        for key in sorted(self._unschedulable):
            self._to_schedule[key] = None
        self._unschedulable.clear()

    def _schedule_pending(self, limit: int | None) -> None:
        n = 0
        while self._to_schedule and (limit is None or n < limit):
            key = next(iter(self._to_schedule))
            del self._to_schedule[key]
            n += 1
            self._schedule(*key)

    def _schedule(self, ns: str, name: str) -> None:
        pod = self.pods.get(ns, name)
        if pod is None or pod["spec"].get("nodeName") or _is_terminal(pod):
            return
        spec = pod["spec"]
        reasons: dict[str, int] = {}
        chosen = None
        for node_name in sorted(self.nodes):
            node = self.nodes[node_name]
            bad = None
            if node["spec"].get("unschedulable"):
                bad = "node(s) were unschedulable"
            if bad is None:
                for taint in node["spec"].get("taints") or []:
                    if taint.get("effect") not in ("NoSchedule", "NoExecute"):
                        continue
                    if not any(_tolerates(t, taint) for t in spec.get("tolerations") or []):
                        bad = f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
                        break
            if bad is None and not _node_affinity_ok(spec, node["metadata"].get("labels") or {}):
                bad = "node(s) didn't match Pod's node affinity/selector"
            if bad is None:
                chosen = node_name
                break
            reasons[bad] = reasons.get(bad, 0) + 1
        now = now_rfc3339()
        if chosen is None:
            total = len(self.nodes)
            if total == 0:
                message = "no nodes available to schedule pods"
            else:
                parts = sorted(f"{count} {why}" for why, count in reasons.items())
                message = f"0/{total} nodes are available: {', '.join(parts)}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
            cond = {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": now,
                "reason": "Unschedulable",
                "message": message,
            }
            old = pod["status"].get("conditions") or []
            if not old or old[0].get("message") != message:
                if old and old[0].get("reason") == "Unschedulable":
                    cond["lastTransitionTime"] = old[0]["lastTransitionTime"]
                pod["status"]["conditions"] = [cond]
                self._touch(pod)
            self._unschedulable.add((ns, name))
            return
        self._bind(pod, chosen)

    def _bind(self, pod: Obj, node_name: str) -> None:
        now = now_rfc3339()
        spec, status, md = pod["spec"], pod["status"], pod["metadata"]
        spec["nodeName"] = node_name
        virtual = node_name == VIRTUAL_NODE
        node_ip = self.nodes[node_name]["status"]["addresses"][0]["address"]
        seq = next(self._ip_seq)
        pod_ip = f"10.{241 if virtual else 240}.{(seq // 250) % 250}.{seq % 250 + 4}"
        if virtual:
            # The binding sets PodScheduled (kube-apiserver BindingREST); nothing else is written
            # until the container group runs: azure-aci cannot map a group whose containers have no
            # start time yet (pkg/validation ValidateContainer), so the pod shows no container
            # statuses, host IP or start time while ACI creates it.
            status["conditions"] = [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
            ]
            self._touch(pod)
            self._pod_ips[(md["namespace"], md["name"])] = pod_ip
            if self._vk_down:  # bound in the grace period: virtual-kubelet sees it once it is back
                self._vk_deferred.append(("vk-create", (md["namespace"], md["name"], md["uid"])))
                return
            self._vk_create((md["namespace"], md["name"], md["uid"]))
            return
        cnames = [c["name"] for c in spec.get("containers") or []]
        unready = f"containers with unready status: [{' '.join(cnames)}]"
        status["conditions"] = [
            {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": None, "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
            {
                "type": "Ready",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": now,
                "reason": "ContainersNotReady",
                "message": unready,
            },
            {
                "type": "ContainersReady",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": now,
                "reason": "ContainersNotReady",
                "message": unready,
            },
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
        ]
        status["hostIP"] = node_ip
        status["hostIPs"] = [{"ip": node_ip}]
        status["startTime"] = now
        status["containerStatuses"] = _creating_statuses(spec)
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
        self._touch(pod)
        start = self.pod_start_seconds if self.pod_start_seconds is not None else KUBELET_START_SECONDS
        self._timer(start * self.time_scale, "start", md["namespace"], md["name"], md["uid"])

    def _vk_create(self, key: tuple[str, ...]) -> None:
        """virtual-kubelet calls the provider's CreatePod as soon as the pod is on its node."""
        pod = self.pods.get(key[0], key[1])
        if pod is None or pod["metadata"]["uid"] != key[2] or pod["metadata"].get("deletionTimestamp"):
            return
        start = self.pod_start_seconds if self.pod_start_seconds is not None else self.aci.settings.start_seconds
        self.aci.create(
            pod,
            start_seconds=start,
            attempt=self._runtime_attempt.pop((key[0], key[1]), 1),
            host_ip=self.nodes[VIRTUAL_NODE]["status"]["addresses"][0]["address"],
            pod_ip=self._pod_ips.pop((key[0], key[1]), ""),
        )
        self._job_dirty_for(pod)
