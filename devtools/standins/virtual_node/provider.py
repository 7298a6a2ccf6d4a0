"""The virtual node's provider: what happens to a pod bound to ``virtual-node-aci-linux``.

virtual-kubelet's pod controller calls azure-aci ``CreatePod`` as soon as a pod lands on the node
(virtual-kubelet ``node/pod.go createOrUpdatePod``): the per-pod rules and ACI's quotas either
refuse it (``handleProviderError``: phase Failed with restart policy Never, else Pending; reason
``ProviderFailed``; message = the error) or a container group is created. ACI then takes tens of
seconds to start it (20–30 s reported by the azure-aci maintainers, more for large images:
``AciSettings.start_seconds``, scaled by the stand-in's ``time_scale``). Status comes back through
``status`` (``containergroup_to_pod.go``); logs through ``logs``. The group exists, and counts
against the quota, until the pod is deleted (azure-aci ``DeletePod`` → ``deleteContainerGroup``).

No locking here: the cluster calls in under its lock. ``host`` is the cluster (timers, writes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from devtools.standins.metav1_time import now_rfc3339, rfc3339_of
from devtools.standins.pod_script import plan_container
from devtools.standins.virtual_node import DEFAULT_MAX_CPU, DEFAULT_MAX_MEMORY_GB, refusal
from devtools.standins.virtual_node.env import aci_env
from devtools.standins.virtual_node.errors import Refusal, arm_error
from devtools.standins.virtual_node.features import pull_credentials, secret_files
from devtools.standins.virtual_node.logs import aci_log
from devtools.standins.virtual_node.naming import container_group_name
from devtools.standins.virtual_node.quotas import QuotaCounters, QuotaLedger, QuotaSettings
from devtools.standins.virtual_node.resources import aci_resources, capacity_refusal
from devtools.standins.virtual_node.status import (
    PREVIOUS_STATE,
    conditions,
    container_id,
    group_state,
    phase_of,
    running_state,
    terminated_state,
)

Obj = dict[str, Any]


@dataclass(frozen=True)
class AciSettings:
    """The modelled subscription + region. Defaults are ACI's defaults."""

    reports_exit_codes: bool = False  # False = like azure-aci today (#417): exit codes are lost
    start_seconds: float = 25.0  # simulated seconds from create to Running
    max_cpu: float = DEFAULT_MAX_CPU  # per container group (regional capacity, see resources.py)
    max_memory_gb: float = DEFAULT_MAX_MEMORY_GB
    quotas: QuotaSettings = field(default_factory=QuotaSettings)


class Host(Protocol):
    time_scale: float

    def timer(self, delay: float, kind: str, *key: str) -> None: ...
    def pod_changed(self, pod: Obj) -> None: ...
    def secret_data(self, ns: str, name: str) -> dict[str, str] | None: ...
    def secret_object(self, ns: str, name: str) -> dict[str, Any] | None: ...


PullCheck = Callable[[str, str], bool]
"""A private registry's answer to ``(username, password)``: may this credential pull?"""


@dataclass
class _Run:
    lines: list[tuple[float, str]]  # (offset in wall seconds after start, text)
    end: float
    exit_code: int
    finished: float | None = None  # epoch


@dataclass
class _Group:
    name: str
    pod_uid: str
    env: dict[str, dict[str, str]]
    created: str
    host_ip: str  # virtual-kubelet's node IP (azure-aci p.internalIP)
    ip: str  # the group's IP in the virtual-node subnet
    state: str = "Pending"
    started_mono: float = 0.0
    started_epoch: float = 0.0
    runs: dict[str, _Run] = field(default_factory=dict)


class AciProvider:
    """Container groups of one stand-in (one subscription + region)."""

    def __init__(self, settings: AciSettings, host: Host) -> None:
        self.settings = settings
        self.host = host
        self.quota = QuotaLedger(settings.quotas, clock=lambda: time.monotonic() / max(host.time_scale, 1e-9))
        self._groups: dict[tuple[str, str], _Group] = {}
        self._attempts: dict[tuple[str, str], int] = {}  # pod → attempt number of its index (fail-once)
        self.registries: dict[str, PullCheck] = {}  # private registries (login server → check)
        self._log_faults = 0
        self._log_fault_prefix = ""

    # ------------------------------------------------------------------ public knobs

    @property
    def counters(self) -> QuotaCounters:
        return self.quota.counters

    def inject(self, code: str, times: int = 1) -> None:
        """Fail the next ``times`` creates with ``ServiceUnavailable`` (409) or ``TooManyRequests`` (429)."""
        self.quota.inject(code, times)

    def set_capacity_available(self, available: bool) -> None:
        """False: every create fails with 409 ServiceUnavailable until set back to True."""
        self.quota.capacity_available = available

    def clear_faults(self) -> None:
        self.quota.clear_faults()
        self._log_faults = 0

    def fail_logs(self, times: int = 1, *, pod_prefix: str = "") -> None:
        """The next ``times`` log reads of pods whose name starts with ``pod_prefix`` fail as
        newer azure-aci fails them: the raw ARM error of ``ListLogs`` (here a throttle), which
        virtual-kubelet answers with 500 (``pkg/provider/aci.go GetContainerLogs``)."""
        self._log_faults = times
        self._log_fault_prefix = pod_prefix

    def log_fault(self, pod: str = "") -> str | None:
        """The provider's error for this log read, if one was injected (``fail_logs``)."""
        if self._log_faults <= 0 or not pod.startswith(self._log_fault_prefix):
            return None
        self._log_faults -= 1
        return (
            "GET https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
            "MC_rg_aks_westus/providers/Microsoft.ContainerInstance/containerGroups/logs\n"
            "RESPONSE 429: 429 Too Many Requests\nERROR CODE: SubscriptionRequestsThrottled"
        )

    # ------------------------------------------------------------------ create

    def create(self, pod: Obj, *, start_seconds: float, attempt: int, host_ip: str, pod_ip: str) -> Refusal | None:
        """azure-aci ``CreatePod`` for a pod just bound to the virtual node. Returns the refusal
        that was written to the pod, or ``None`` when a container group was created."""
        md, spec = pod["metadata"], pod["spec"]
        ns, name = md["namespace"], md["name"]
        cg = container_group_name(ns, name)
        containers = spec.get("containers") or []
        found = refusal(
            ns,
            pod,
            max_cpu=self.settings.max_cpu,
            max_memory_gb=self.settings.max_memory_gb,
            secrets=lambda secret: self.host.secret_data(ns, secret),
            secret_objects=lambda secret: self.host.secret_object(ns, secret),
        )
        if found is None:
            found = self._pull_refusal(pod, cg)
        if found is None:
            cores = sum(aci_resources(c)[0] for c in containers)
            memory = sum(aci_resources(c)[2] for c in containers)
            if any("provider-failed" in str(c.get("image", "")) for c in containers):
                found = capacity_refusal(cores, memory)  # test hook: an image name that ACI has no room for
                self.quota.counters.creates_refused[found.code] += 1
            else:
                found = self.quota.admit(cg, cores, memory)  # counts its own refusals
        elif not found.stuck:
            self.quota.counters.creates_refused[found.code] += 1
        if found is not None:
            if not found.stuck:
                self._provider_failed(pod, found, cg)
            return found
        envs: dict[str, dict[str, str]] = {}
        for c in containers:
            env = aci_env(pod, c)
            envs[c["name"]] = env if isinstance(env, dict) else {}
        self._groups[(ns, name)] = _Group(cg, md["uid"], envs, created=now_rfc3339(), host_ip=host_ip, ip=pod_ip)
        self._attempts[(ns, name)] = attempt
        self.host.timer(start_seconds * self.host.time_scale, "start", ns, name, md["uid"])
        return None

    def _pull_refusal(self, pod: Obj, cg: str) -> Refusal | None:
        """ACI pulls each image when the container group is created, with the group's
        ``imageRegistryCredentials`` for its server; a private image without a credential the
        registry accepts fails the create: 400 ``InaccessibleImage`` "The image '<image>' in container
        group '<group>' is not accessible. Please check the image and registry credential." (the ACI
        error as users report it: Azure/azure-cli#18596, Azure/azure-sdk-for-net#36227)."""
        creds = pull_credentials(pod, lambda secret: self.host.secret_object(pod["metadata"]["namespace"], secret))
        if isinstance(creds, Refusal):
            return creds
        for c in (pod.get("spec") or {}).get("containers") or []:
            image = str(c.get("image", ""))
            check = self.registries.get(image.split("/", 1)[0])
            if check is None:
                continue  # a public registry
            if not any(server == image.split("/", 1)[0] and check(user, pw) for server, user, pw in creds):
                return arm_error(
                    400,
                    "InaccessibleImage",
                    f"The image '{image}' in container group '{cg}' is not accessible. "
                    "Please check the image and registry credential.",
                )
        return None

    def _provider_failed(self, pod: Obj, found: Refusal, cg: str) -> None:
        status = pod["status"]
        # virtual-kubelet node/pod.go handleProviderError
        status["phase"] = "Failed" if pod["spec"].get("restartPolicy") == "Never" else "Pending"
        status["reason"] = "ProviderFailed"
        status["message"] = found.pod_message(cg)
        self.host.pod_changed(pod)

    # ------------------------------------------------------------------ run

    def start(self, pod: Obj) -> None:
        """The group reaches Running: every container starts (ACI state Running)."""
        md, spec, status = pod["metadata"], pod["spec"], pod["status"]
        key = (md["namespace"], md["name"])
        group = self._groups.get(key)
        if group is None or group.pod_uid != md["uid"]:
            return
        attempt = self._attempts.pop(key, 1)
        group.state = "Running"
        group.started_mono, group.started_epoch = time.monotonic(), time.time()
        started = rfc3339_of(group.started_epoch)
        statuses: list[Obj] = []
        for c in spec.get("containers") or []:
            env = dict(group.env.get(c["name"], {}))
            argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]  # getCommand: as is
            files = secret_files(pod, c, lambda secret: self.host.secret_data(md["namespace"], secret))
            lines, end, code = plan_container(
                argv,
                env,
                pod_name=md["name"],
                first_attempt=attempt <= 1,
                time_scale=self.host.time_scale,
                files=files,
            )
            group.runs[c["name"]] = _Run(lines, end, code)
            statuses.append(
                {
                    "name": c["name"],
                    "state": running_state(started),
                    "lastState": dict(PREVIOUS_STATE),
                    "ready": True,
                    "restartCount": 0,
                    "image": c.get("image", ""),
                    "imageID": "",
                    "containerID": container_id(group.name, c["name"]),
                    "started": True,
                }
            )
            self.host.timer(end, "aci-exit", md["namespace"], md["name"], md["uid"], c["name"])
        status.update(
            {
                "phase": phase_of("Running"),
                "conditions": conditions("Running", group.created, started, True),
                "startTime": started,
                "containerStatuses": statuses,
                "hostIP": group.host_ip,
                "hostIPs": [{"ip": group.host_ip}],
                "podIP": group.ip,
                "podIPs": [{"ip": group.ip}],
            }
        )
        self.host.pod_changed(pod)

    def container_exit(self, pod: Obj, container: str) -> None:
        md, status = pod["metadata"], pod["status"]
        group = self._groups.get((md["namespace"], md["name"]))
        if group is None or group.pod_uid != md["uid"] or container not in group.runs:
            return
        run = group.runs[container]
        run.finished = time.time()
        started = rfc3339_of(group.started_epoch)
        for cs in status.get("containerStatuses") or []:
            if cs["name"] == container:
                cs["state"], _ = terminated_state(
                    run.exit_code,
                    started,
                    rfc3339_of(run.finished),
                    reports_exit_codes=self.settings.reports_exit_codes,
                )
                cs["ready"] = False
                cs["started"] = False
        if all(r.finished is not None for r in group.runs.values()):
            group.state = group_state([r.exit_code for r in group.runs.values()])
            status["phase"] = phase_of(group.state)
            # Ready is False: an exited container's ACI state maps to no Running/Succeeded phase.
            status["conditions"] = conditions(group.state, group.created, started, False)
            self.quota.stopped(group.name)
        self.host.pod_changed(pod)

    # ------------------------------------------------------------------ delete / logs

    def delete(self, ns: str, name: str) -> None:
        """azure-aci ``DeletePod``: the container group goes, and frees its quota."""
        group = self._groups.pop((ns, name), None)
        self._attempts.pop((ns, name), None)
        self.quota.delete(group.name if group is not None else container_group_name(ns, name))

    def has_group(self, ns: str, name: str) -> bool:
        return (ns, name) in self._groups

    def logs(self, ns: str, name: str, container: str, *, tail_lines: int | None) -> str | None:
        """ACI's log for a started container, ``None`` before the group runs."""
        group = self._groups.get((ns, name))
        if group is None or container not in group.runs:
            return None
        run = group.runs[container]
        elapsed = time.monotonic() - group.started_mono
        done = run.finished is not None
        lines = [(group.started_epoch + off, text) for off, text in run.lines if done or off <= elapsed]
        return aci_log(lines, stopped=done, tail=tail_lines)
