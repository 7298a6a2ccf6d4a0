"""The kubelet of the AKS system node (simulated): starts a bound pod's containers, "runs" their
scripts (``pod_script``), records exits and serves container logs. Pods on the virtual node are run
by ``virtual_node.provider.AciProvider`` instead (virtual-kubelet + azure-aci + ACI)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from devtools.standins.kube.nodes import VIRTUAL_NODE, fake_hex
from devtools.standins.kube.objects import PODS, ApiError, Obj, bad_request, not_found
from devtools.standins.kube.state import (
    COMPLETION_INDEX,
    ClusterState,
    _is_terminal,
)
from devtools.standins.metav1_time import now_rfc3339, rfc3339_nano_of, rfc3339_of
from devtools.standins.pod_script import plan_container

# A kubelet starts a pod's containers in about a second once the image is present (no source:
# the stand-in's choice); the virtual node's start time is ACI's (``AciSettings.start_seconds``).
KUBELET_START_SECONDS = 1.0


@dataclass
class ContainerPlan:
    name: str
    lines: list[tuple[float, str]]  # (offset in wall seconds after start, text)
    end: float  # wall seconds after start
    exit_code: int


@dataclass
class PodRuntime:
    started_mono: float = 0.0
    started_epoch: float = 0.0
    plans: dict[str, ContainerPlan] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)  # container → epoch


def _image_ref(image: str) -> str:
    name = image.split("@", maxsplit=1)[0]
    if "/" not in name.split(":")[0] or "." not in name.split("/")[0]:
        name = "docker.io/" + ("library/" + name if "/" not in name else name)
    return name


def _creating_statuses(spec: Obj) -> list[Obj]:
    """Container statuses of a pod bound to a node whose containers are being created."""
    return [
        {
            "name": c["name"],
            "state": {"waiting": {"reason": "ContainerCreating"}},
            "lastState": {},
            "ready": False,
            "restartCount": 0,
            "image": c.get("image", ""),
            "imageID": "",
            "started": False,
        }
        for c in spec.get("containers") or []
    ]


class Kubelet(ClusterState):
    """Pod start, container exits and logs on the system node; hands virtual-node pods to ACI."""

    _runtime: dict[tuple[str, str], PodRuntime]

    def pod_log(
        self,
        ns: str,
        name: str,
        *,
        container: str | None,
        tail_lines: int | None,
        limit_bytes: int | None,
        timestamps: bool,
    ) -> str:
        pod = self.pods.get(ns, name)
        if pod is None:
            raise not_found(PODS, name)
        cnames = [c["name"] for c in pod["spec"].get("containers") or []]
        if container is None:
            if len(cnames) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(cnames)}]"
                )
            container = cnames[0]
        elif container not in cnames:
            raise bad_request(f"container {container} is not valid for pod {name}")
        if not pod["spec"].get("nodeName"):
            raise bad_request(f"pod {name} does not have a host assigned")
        virtual = pod["spec"].get("nodeName") == VIRTUAL_NODE
        if virtual and self._vk_down:
            raise self._node_dial_error(ns, name, container)
        if virtual and (fault := self.aci.log_fault(name)) is not None:
            # virtual-kubelet node/api/logs.go HandleContainerLogs → handleError: 500 for any
            # error but NotFound / InvalidInput, the error text as the body; kube-apiserver's
            # GenericHttpResponseChecker (apiserver/pkg/registry/generic/rest/response_checker.go)
            # turns a 500 into NewInternalError(body).
            raise ApiError(500, f"Internal error occurred: {fault}", details={})
        aci_text = self.aci.logs(ns, name, container, tail_lines=tail_lines) if virtual else None
        if aci_text is not None:
            return aci_text  # azure-aci ListLogs: timestamps always, limitBytes ignored
        rt = self._runtime.get((ns, name))
        if rt is None or container not in rt.plans:
            if _is_terminal(pod) and "seeded" in (pod["metadata"].get("annotations") or {}).get(
                "standin.vnode-batch/origin", ""
            ):
                return ""
            waiting = "ContainerCreating"
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                if cs.get("name") == container and "waiting" in (cs.get("state") or {}):
                    waiting = cs["state"]["waiting"].get("reason") or waiting
            if waiting in ("ImagePullBackOff", "ErrImagePull"):
                raise bad_request(
                    f'container "{container}" in pod "{name}" is waiting to start: trying and failing to pull image'
                )
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {waiting}')
        plan = rt.plans[container]
        elapsed = time.monotonic() - rt.started_mono
        done = container in rt.finished
        lines = [(off, text) for off, text in plan.lines if done or off <= elapsed]
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines > 0 else []
        if timestamps:
            text = "".join(f"{rfc3339_nano_of(rt.started_epoch + off)} {t}\n" for off, t in lines)
        else:
            text = "".join(f"{t}\n" for _, t in lines)
        if limit_bytes is not None:
            text = text.encode()[:limit_bytes].decode(errors="ignore")
        return text

    def _aci_exit(self, key: tuple[str, ...]) -> None:
        pod = self.pods.get(key[0], key[1])
        if pod is not None and pod["metadata"]["uid"] == key[2] and not _is_terminal(pod):
            self.aci.container_exit(pod, key[3])

    def _pull_backoff(self, key: tuple[str, ...]) -> None:
        pod = self.pods.get(key[0], key[1])
        if pod is not None and pod["metadata"]["uid"] == key[2] and not _is_terminal(pod):
            for cs in pod["status"].get("containerStatuses") or []:
                if "waiting" in cs["state"]:
                    cs["state"]["waiting"] = {
                        "reason": "ImagePullBackOff",
                        "message": f'Back-off pulling image "{cs["image"]}"',
                    }
            self._touch(pod)

    def _container_env(self, pod: Obj, c: Obj) -> dict[str, str]:
        md = pod["metadata"]
        env = {
            "HOSTNAME": pod["spec"].get("hostname") or md["name"],
            "KUBERNETES_SERVICE_HOST": "10.0.0.1",
            "KUBERNETES_SERVICE_PORT": "443",
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        }
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif (ref := ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")) is not None:
                m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", ref)
                if m:
                    env[e["name"]] = (md.get(m.group(1)) or {}).get(m.group(2), "")
                elif ref in ("metadata.name", "metadata.namespace", "metadata.uid"):
                    env[e["name"]] = md[ref.split(".")[1]]
                elif ref == "spec.nodeName":
                    env[e["name"]] = pod["spec"].get("nodeName", "")
                elif ref == "status.podIP":
                    env[e["name"]] = pod["status"].get("podIP", "")
        if COMPLETION_INDEX in (md.get("annotations") or {}):
            env.setdefault("JOB_COMPLETION_INDEX", md["annotations"][COMPLETION_INDEX])
        return env

    def _start_pod(self, ns: str, name: str, uid: str) -> None:
        pod = self.pods.get(ns, name)
        if pod is None or pod["metadata"]["uid"] != uid or _is_terminal(pod):
            return
        spec, status = pod["spec"], pod["status"]
        virtual = spec.get("nodeName") == VIRTUAL_NODE
        images = [c.get("image", "") for c in spec.get("containers") or []]
        now = now_rfc3339()
        # Test hooks by image name (not platform rules): an ACI create that stays in ACI's own
        # capacity retries, and an image that does not exist.
        if (
            virtual
            and not status.get("containerStatuses")
            and any(h in i for i in images for h in ("no-capacity", "does-not-exist"))
        ):
            status["containerStatuses"] = _creating_statuses(spec)
        if virtual and any("no-capacity" in i for i in images):
            msg = (
                "Creating ACI container group failed: ServiceUnavailable: insufficient capacity: the requested resource is not available "
                "in the location 'westus' at this moment. Resource requested: '1' CPU '1.5' GB memory 'Linux' OS. Retrying."
            )
            status["message"] = msg
            for cs in status.get("containerStatuses") or []:
                cs["state"] = {"waiting": {"reason": "ContainerCreating", "message": msg}}
            self._touch(pod)
            return
        if any("does-not-exist" in i for i in images):
            for cs in status.get("containerStatuses") or []:
                ref = _image_ref(cs["image"])
                cs["state"] = {
                    "waiting": {
                        "reason": "ErrImagePull",
                        "message": f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": {ref}: not found',
                    }
                }
            self._touch(pod)
            backoff = self.pod_start_seconds if self.pod_start_seconds is not None else KUBELET_START_SECONDS
            self._timer(max(backoff * self.time_scale, 0.01), "pullbackoff", ns, name, uid)
            return
        if virtual:
            self.aci.start(pod)
            return
        # Running (kubelet)
        rt = PodRuntime(started_mono=time.monotonic(), started_epoch=time.time())
        attempt = self._runtime_attempt.pop((ns, name), 1)
        prefix = "containerd"
        for c, cs in zip(spec.get("containers") or [], status.get("containerStatuses") or [], strict=False):
            env = self._container_env(pod, c)
            argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
            lines, end, code = plan_container(
                argv, env, pod_name=name, first_attempt=attempt <= 1, time_scale=self.time_scale
            )
            rt.plans[c["name"]] = ContainerPlan(c["name"], lines, end, code)
            cs.update(
                {
                    "state": {"running": {"startedAt": now}},
                    "ready": True,
                    "started": True,
                    "imageID": f"{_image_ref(cs['image']).rsplit(':', 1)[0]}@sha256:{fake_hex(cs['image'])}",
                    "containerID": f"{prefix}://{fake_hex(pod['metadata']['uid'] + c['name'])}",
                }
            )
            self._timer(end, "exit", ns, name, uid, c["name"])
        self._runtime[(ns, name)] = rt
        status["phase"] = "Running"
        self._set_pod_conditions(pod, ready=True, reason=None)
        self._touch(pod)
        self._job_dirty_for(pod)

    def _set_pod_conditions(self, pod: Obj, *, ready: bool, reason: str | None) -> None:
        now = now_rfc3339()
        for cond in pod["status"].get("conditions") or []:
            if cond["type"] in ("Ready", "ContainersReady", "PodReadyToStartContainers"):
                want = "True" if ready else "False"
                if cond["type"] == "PodReadyToStartContainers":
                    want = "True" if ready or reason == "PodCompleted" else "False"
                if cond["status"] != want:
                    cond["status"] = want
                    cond["lastTransitionTime"] = now
                if cond["type"] != "PodReadyToStartContainers":
                    if ready:
                        cond.pop("reason", None)
                        cond.pop("message", None)
                    elif reason:
                        cond["reason"] = reason
                        cond.pop("message", None)

    def _container_exit(self, ns: str, name: str, uid: str, cname: str) -> None:
        pod = self.pods.get(ns, name)
        rt = self._runtime.get((ns, name))
        if pod is None or rt is None or pod["metadata"]["uid"] != uid or _is_terminal(pod):
            return
        plan = rt.plans[cname]
        finished = time.time()
        rt.finished[cname] = finished
        for cs in pod["status"].get("containerStatuses") or []:
            if cs["name"] == cname:
                cs["state"] = {
                    "terminated": {
                        "exitCode": plan.exit_code,
                        "reason": "Completed" if plan.exit_code == 0 else "Error",
                        "startedAt": rfc3339_of(rt.started_epoch),
                        "finishedAt": rfc3339_of(finished),
                        "containerID": cs.get("containerID", ""),
                    }
                }
                cs["ready"] = False
                cs["started"] = False
        if len(rt.finished) == len(rt.plans):
            ok = all(p.exit_code == 0 for p in rt.plans.values())
            pod["status"]["phase"] = "Succeeded" if ok else "Failed"
            self._set_pod_conditions(pod, ready=False, reason="PodCompleted")
        self._touch(pod)
        self._job_dirty_for(pod)
