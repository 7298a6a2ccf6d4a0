"""State and controllers of the Kubernetes stand-in: the store, the Job controller, the scheduler,
the garbage collector, the TTL controller and a simulated kubelet for the system node. Pods bound
to the virtual node are handed to ``virtual_node.provider.AciProvider`` (virtual-kubelet +
azure-aci + ACI); the containers' "script language" lives in ``pod_script``.

No HTTP here: ``kube.KubeStandIn`` serves this over HTTPS. Everything runs under one re-entrant
lock; the controller loop takes it in short batches so request threads are never starved.

Still long (≈1,500 lines) on purpose: the Job controller, scheduler, garbage collector and TTL
controller share one store, one lock and one timer heap, and read most easily side by side. The
store (``kube_store``), node objects (``kube_nodes``), benchmark seeding (``kube_seed``), the
container script language (``pod_script``) and the virtual node (``virtual_node``) live apart.

Durations in specs and scripts (``sleep``, ``activeDeadlineSeconds``, ``ttlSecondsAfterFinished``,
pod start, retry back-off) are simulated seconds: they are multiplied by ``time_scale`` to get
wall-clock seconds. Timestamps in objects are real wall-clock times (RFC 3339, second precision).
"""

from __future__ import annotations

import copy
import heapq
import itertools
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from devtools.standins.kube_nodes import VIRTUAL_NODE, fake_hex, system_node_obj, virtual_node_obj
from devtools.standins.kube_objects import (
    JOBS,
    NAMESPACES,
    NODES,
    PODS,
    FieldError,
    FieldRequirement,
    Obj,
    Requirement,
    Resource,
    already_exists,
    bad_request,
    conflict,
    encode_continue,
    fields_match,
    generate_name,
    index_ranges,
    invalid,
    labels_match,
    match_label_selector_obj,
    not_found,
    now_rfc3339,
    rfc3339_nano_of,
    rfc3339_of,
    validate_annotations,
    validate_labels,
    validate_name,
)
from devtools.standins.kube_store import Table
from devtools.standins.pod_script import plan_container
from devtools.standins.virtual_node.naming import job_pod_prefix
from devtools.standins.virtual_node.provider import AciProvider, AciSettings

NOT_READY_TAINT_KEY = "node.kubernetes.io/not-ready"
MAX_INT32 = 2147483647

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"

# A kubelet starts a pod's containers in about a second once the image is present (no source:
# the stand-in's choice); the virtual node's start time is ACI's (``AciSettings.start_seconds``).
KUBELET_START_SECONDS = 1.0


# --------------------------------------------------------------------------- the simulated runtime


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


# --------------------------------------------------------------------------- the cluster


def _image_ref(image: str) -> str:
    name = image.split("@", maxsplit=1)[0]
    if "/" not in name.split(":")[0] or "." not in name.split("/")[0]:
        name = "docker.io/" + ("library/" + name if "/" not in name else name)
    return name


def _container_defaults(c: Obj) -> None:
    image = c.get("image") or ""
    if "imagePullPolicy" not in c:
        tag = image.rsplit("/", 1)[-1]
        c["imagePullPolicy"] = (
            "Always" if (":" not in tag and "@" not in image) or tag.endswith(":latest") else "IfNotPresent"
        )
    c.setdefault("resources", {})
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")


def _pod_spec_defaults(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            _container_defaults(c)
    for c in spec.get("initContainers") or []:
        if isinstance(c, dict):
            _container_defaults(c)


def _qos(spec: Obj) -> str:
    containers = spec.get("containers") or []
    any_set, guaranteed = False, True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r, lim.get(r)) != lim.get(r):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _pod_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


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


class Cluster:
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
        for ns in namespaces:
            self.create_namespace({"metadata": {"name": ns}})
        if system_node:
            self._put_node(self._system_node_obj())
        if virtual_node:
            self.add_virtual_node(True)

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
        self._dirty[(ns, name)] = None

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

    # ------------------------------------------------------------------ namespaces

    def create_namespace(self, body: Obj) -> Obj:
        meta = body.get("metadata") or {}
        name = meta.get("name") or (generate_name(meta["generateName"]) if meta.get("generateName") else "")
        errs = validate_name(name, max_len=63, label=True) + validate_labels(meta.get("labels"), "metadata.labels")
        if errs:
            raise invalid(NAMESPACES, str(name), errs)
        if name in self.namespaces:
            raise already_exists(NAMESPACES, name)
        md = self._new_meta(name, None, meta)
        md.pop("generation", None)
        md.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj = {"metadata": md, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        self.namespaces[name] = obj
        return obj

    def require_namespace(self, ns: str) -> None:
        if ns not in self.namespaces:
            raise not_found(NAMESPACES, ns)

    # ------------------------------------------------------------------ nodes

    def _system_node_obj(self) -> Obj:
        return system_node_obj(self.next_rv())

    def _virtual_node_obj(self) -> Obj:
        return virtual_node_obj(self.next_rv())

    def _put_node(self, node: Obj) -> None:
        self.nodes[node["metadata"]["name"]] = node
        self._requeue_unschedulable()

    def _requeue_unschedulable(self) -> None:
        for key in sorted(self._unschedulable):
            self._to_schedule[key] = None
        self._unschedulable.clear()

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

    def remove_virtual_node(self) -> None:
        with self.lock:
            if self.nodes.pop(VIRTUAL_NODE, None) is None:
                return
            # PodGC: pods bound to a node that no longer exists are deleted.
            for ns in self.pods.namespaces():
                for name, pod in list(self.pods.by_ns[ns].items()):
                    if (pod.get("spec") or {}).get("nodeName") == VIRTUAL_NODE:
                        self._remove_pod(ns, name, count_failure=True)

    # ------------------------------------------------------------------ jobs: create / update / delete

    def create_job(self, ns: str, body: Obj, *, dry_run: bool = False) -> Obj:
        meta = body.get("metadata") or {}
        if not isinstance(meta, dict):
            raise bad_request('Job in version "v1" cannot be handled as a Job: metadata must be an object')
        if meta.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        self.require_namespace(ns)
        name = meta.get("name") or (generate_name(meta["generateName"]) if meta.get("generateName") else "")
        spec = copy.deepcopy(body.get("spec") or {})
        errs = (
            validate_name(name, max_len=63)
            + validate_labels(meta.get("labels"), "metadata.labels")
            + validate_annotations(meta.get("annotations"), "metadata.annotations")
        )
        errs += self._validate_job_spec(spec, user_create=True)
        if errs:
            raise invalid(JOBS, str(name), errs)
        while not meta.get("name") and self.jobs.get(ns, name) is not None:
            name = generate_name(meta["generateName"])
        if self.jobs.get(ns, name) is not None:
            raise already_exists(JOBS, name)
        md = self._new_meta(name, ns, meta)
        uid = md["uid"]
        # batch/v1 defaulting, then the strategy's generated selector and labels
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
            spec["parallelism"] = 1
        elif spec.get("parallelism") is None:
            spec["parallelism"] = 1
        spec.setdefault("completionMode", "NonIndexed")
        if "backoffLimit" not in spec:
            spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
        spec.setdefault("manualSelector", None)
        if spec.get("manualSelector") is None:
            spec.pop("manualSelector", None)
        tmpl = spec.setdefault("template", {})
        tmeta = tmpl.setdefault("metadata", {})
        user_template_labels = tmeta.get("labels")
        tlabels = dict(user_template_labels or {})
        if not spec.get("manualSelector"):
            spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
            tlabels.update({CONTROLLER_UID: uid, JOB_NAME: name, "controller-uid": uid, "job-name": name})
        tmeta["labels"] = tlabels
        _pod_spec_defaults(tmpl.setdefault("spec", {}))
        if not md.get("labels") and user_template_labels is not None:
            md["labels"] = dict(tlabels)
        ordered_spec = {
            k: spec[k]
            for k in (
                "parallelism",
                "completions",
                "activeDeadlineSeconds",
                "backoffLimit",
                "backoffLimitPerIndex",
                "maxFailedIndexes",
                "selector",
                "manualSelector",
                "template",
            )
            if k in spec
        }
        ordered_spec.update({k: v for k, v in spec.items() if k not in ordered_spec})
        obj: Obj = {"metadata": md, "spec": ordered_spec, "status": {}}
        if dry_run:
            md.pop("uid", None)
            return obj
        self.jobs.put(obj)
        self._states[uid] = JobState(uid=uid)
        self._pods_by_owner.setdefault(uid, set())
        self._mark_dirty(ns, name)
        return obj

    def _validate_job_spec(self, spec: Obj, *, user_create: bool) -> list[FieldError]:
        errs: list[FieldError] = []
        for key in (
            "parallelism",
            "completions",
            "backoffLimit",
            "backoffLimitPerIndex",
            "maxFailedIndexes",
            "ttlSecondsAfterFinished",
            "activeDeadlineSeconds",
        ):
            v = spec.get(key)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int):
                raise bad_request(
                    f'Job in version "v1" cannot be handled as a Job: json: cannot unmarshal {type(v).__name__} into Go struct field JobSpec.spec.{key} of type int32'
                )
            if key == "activeDeadlineSeconds" and v <= 0:
                errs.append(
                    FieldError(
                        f"spec.{key}", "FieldValueInvalid", f"Invalid value: {v}: must be greater than or equal to 1"
                    )
                )
            elif v < 0:
                errs.append(
                    FieldError(
                        f"spec.{key}", "FieldValueInvalid", f"Invalid value: {v}: must be greater than or equal to 0"
                    )
                )
        mode = spec.get("completionMode") or "NonIndexed"
        if mode not in ("NonIndexed", "Indexed"):
            errs.append(
                FieldError(
                    "spec.completionMode",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{mode}": supported values: "NonIndexed", "Indexed"',
                )
            )
        if mode == "Indexed" and spec.get("completions") is None:
            errs.append(
                FieldError("spec.completions", "FieldValueRequired", "Required value: when completion mode is Indexed")
            )
        if spec.get("backoffLimitPerIndex") is not None and mode != "Indexed":
            errs.append(
                FieldError(
                    "spec.backoffLimitPerIndex", "FieldValueForbidden", "Forbidden: requires indexed completion mode"
                )
            )
        if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
            errs.append(
                FieldError(
                    "spec.backoffLimitPerIndex",
                    "FieldValueRequired",
                    "Required value: when maxFailedIndexes is specified",
                )
            )
        if user_create and spec.get("selector") is not None and not spec.get("manualSelector"):
            errs.append(
                FieldError(
                    "spec.selector",
                    "FieldValueInvalid",
                    f"Invalid value: {spec['selector']!r}: `selector` not auto-generated",
                )
            )
        tmpl = spec.get("template")
        if not isinstance(tmpl, dict):
            errs.append(FieldError("spec.template.spec.containers", "FieldValueRequired", "Required value"))
            return errs
        errs += validate_labels((tmpl.get("metadata") or {}).get("labels"), "spec.template.metadata.labels")
        pspec = tmpl.get("spec") or {}
        containers = pspec.get("containers")
        if not containers:
            errs.append(FieldError("spec.template.spec.containers", "FieldValueRequired", "Required value"))
        else:
            seen: set[str] = set()
            for i, c in enumerate(containers):
                if not isinstance(c, dict):
                    errs.append(
                        FieldError(
                            f"spec.template.spec.containers[{i}]",
                            "FieldValueInvalid",
                            "Invalid value: must be an object",
                        )
                    )
                    continue
                errs += (
                    validate_name(
                        c.get("name"), max_len=63, label=True, path=f"spec.template.spec.containers[{i}].name"
                    )
                    if c.get("name")
                    else [
                        FieldError(f"spec.template.spec.containers[{i}].name", "FieldValueRequired", "Required value")
                    ]
                )
                if c.get("name") in seen:
                    errs.append(
                        FieldError(
                            f"spec.template.spec.containers[{i}].name",
                            "FieldValueDuplicate",
                            f'Duplicate value: "{c.get("name")}"',
                        )
                    )
                seen.add(str(c.get("name")))
                if not c.get("image") or not str(c.get("image")).strip():
                    errs.append(
                        FieldError(f"spec.template.spec.containers[{i}].image", "FieldValueRequired", "Required value")
                    )
        restart = pspec.get("restartPolicy") or "Always"
        if restart not in ("Never", "OnFailure"):
            errs.append(
                FieldError(
                    "spec.template.spec.restartPolicy",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{restart}": supported values: "OnFailure", "Never"',
                )
            )
        return errs

    def update_job(self, ns: str, name: str, new: Obj, *, expect_rv: str | None, require_rv: bool) -> Obj:
        """PUT and PATCH end here: optimistic concurrency, immutability, generation."""
        cur = self.jobs.get(ns, name)
        if cur is None:
            raise not_found(JOBS, name)
        nmd = new.get("metadata") or {}
        if not isinstance(nmd, dict):
            raise bad_request("metadata must be an object")
        if nmd.get("name") not in (None, name):
            raise bad_request(f"the name of the object ({nmd.get('name')}) does not match the name on the URL ({name})")
        if nmd.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if require_rv and not expect_rv:
            raise invalid(
                JOBS,
                name,
                [
                    FieldError(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        if expect_rv is not None and expect_rv != cur["metadata"]["resourceVersion"]:
            raise conflict(JOBS, name)
        if nmd.get("uid") not in (None, cur["metadata"]["uid"]):
            raise conflict(
                JOBS,
                name,
                f"Precondition failed: UID in precondition: {nmd.get('uid')}, UID in object meta: {cur['metadata']['uid']}",
            )
        spec = new.get("spec") or {}
        errs = validate_labels(nmd.get("labels"), "metadata.labels") + validate_annotations(
            nmd.get("annotations"), "metadata.annotations"
        )
        errs += self._validate_job_spec(spec, user_create=False)
        old_spec = cur["spec"]
        for key in (
            "selector",
            "completionMode",
            "template",
            "podFailurePolicy",
            "successPolicy",
            "backoffLimitPerIndex",
        ):
            if key == "template" and old_spec.get("suspend"):
                continue
            if spec.get(key) != old_spec.get(key):
                errs.append(
                    FieldError(
                        f"spec.{key}", "FieldValueInvalid", f"Invalid value: {spec.get(key)!r}: field is immutable"
                    )
                )
        if spec.get("completions") != old_spec.get("completions") and not (
            spec.get("completionMode") == "Indexed" and spec.get("completions") == spec.get("parallelism")
        ):
            errs.append(
                FieldError(
                    "spec.completions",
                    "FieldValueInvalid",
                    f"Invalid value: {spec.get('completions')}: field is immutable",
                )
            )
        if errs:
            raise invalid(JOBS, name, errs)
        md = dict(cur["metadata"])  # server-owned fields win
        for k in ("labels", "annotations", "finalizers", "ownerReferences"):
            if nmd.get(k):
                md[k] = copy.deepcopy(nmd[k])
            else:
                md.pop(k, None)
        obj: Obj = {"metadata": md, "spec": copy.deepcopy(spec), "status": cur["status"]}
        if obj["spec"] != old_spec:
            md["generation"] = int(md.get("generation", 1)) + 1
        if obj["metadata"] == cur["metadata"] and obj["spec"] == old_spec:
            return cur  # no-op updates do not bump the resourceVersion, as in etcd3 storage
        md["resourceVersion"] = self.next_rv()
        self.jobs.put(obj)
        if md.get("deletionTimestamp"):
            self._mark_dirty(ns, name)  # a finalizer may just have been removed: finish the deletion
        elif self._finished(obj):
            self._schedule_ttl(obj)
        else:
            self._mark_dirty(ns, name)
        return obj

    def delete_job(self, ns: str, name: str, *, policy: str | None, preconditions: Obj | None) -> Obj:
        job = self.jobs.get(ns, name)
        if job is None:
            raise not_found(JOBS, name)
        md = job["metadata"]
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != md["uid"]:
            raise conflict(
                JOBS, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {md['uid']}"
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != md["resourceVersion"]:
            raise conflict(
                JOBS,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, ResourceVersion in object meta: {md['resourceVersion']}",
            )
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise invalid(
                JOBS,
                name,
                [
                    FieldError(
                        "propagationPolicy",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
                    )
                ],
            )
        policy = policy or "Orphan"  # batch/v1 Jobs orphan their pods by default
        if md.get("deletionTimestamp"):
            return job
        if policy == "Background" and md.get("finalizers"):
            # Finalizers hold the object: it is only marked (Terminating) and stays readable until
            # their controllers remove them; its pods are collected once it is really gone.
            md["deletionTimestamp"] = now_rfc3339()
            md["deletionGracePeriodSeconds"] = 0
            self._background_held.add(md["uid"])
            self._touch(job)
            return job
        if policy == "Background":
            self._remove_job(ns, name)
            self._gc_owners[md["uid"]] = ns
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "group": "batch", "kind": "jobs", "uid": md["uid"]},
            }
        self._mark_for_deletion(job, "foregroundDeletion" if policy == "Foreground" else "orphan")
        return job

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

    # ------------------------------------------------------------------ pods

    def delete_pod(self, ns: str, name: str, *, grace: int | None, preconditions: Obj | None) -> Obj:
        pod = self.pods.get(ns, name)
        if pod is None:
            raise not_found(PODS, name)
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != pod["metadata"]["uid"]:
            raise conflict(
                PODS,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {pod['metadata']['uid']}",
            )
        out = copy.deepcopy(pod)
        out["metadata"]["deletionTimestamp"] = now_rfc3339()
        out["metadata"]["deletionGracePeriodSeconds"] = 0 if _is_terminal(pod) else (30 if grace is None else grace)
        self._remove_pod(ns, name, count_failure=True)
        out["metadata"]["resourceVersion"] = str(self._rv)
        return out

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

    def _count_failure(self, st: JobState, pod: Obj, now: float) -> None:
        st.failed += 1
        st.last_failure_mono = now
        idx = self._pod_index(pod)
        if idx >= 0:
            st.index_failures[idx] = st.index_failures.get(idx, 0) + 1
            job = self._job_of(pod)
            limit = (job or {}).get("spec", {}).get("backoffLimitPerIndex")
            if limit is not None and st.index_failures[idx] > limit:
                st.failed_indexes.add(idx)

    def _job_of(self, pod: Obj) -> Obj | None:
        name = (pod["metadata"].get("labels") or {}).get(JOB_NAME)
        return self.jobs.get(pod["metadata"]["namespace"], name) if name else None

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

    # ------------------------------------------------------------------ the controller loop

    def tick(self, batch: int = 200) -> None:
        """One pass of every controller. Takes the lock in batches so requests interleave."""
        with self.lock:
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, kind, key = heapq.heappop(self._timers)
                self._fire(kind, key)
            for uid, ns in list(self._gc_owners.items()):
                del self._gc_owners[uid]
                for pname in sorted(self._pods_by_owner.pop(uid, set())):
                    self._remove_pod(ns, pname, count_failure=False)
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
        if kind == "start":
            self._start_pod(key[0], key[1], key[2])
        elif kind == "exit":
            self._container_exit(key[0], key[1], key[2], key[3])
        elif kind == "aci-exit":
            pod = self.pods.get(key[0], key[1])
            if pod is not None and pod["metadata"]["uid"] == key[2] and not _is_terminal(pod):
                self.aci.container_exit(pod, key[3])
        elif kind == "pullbackoff":
            pod = self.pods.get(key[0], key[1])
            if pod is not None and pod["metadata"]["uid"] == key[2] and not _is_terminal(pod):
                for cs in pod["status"].get("containerStatuses") or []:
                    if "waiting" in cs["state"]:
                        cs["state"]["waiting"] = {
                            "reason": "ImagePullBackOff",
                            "message": f'Back-off pulling image "{cs["image"]}"',
                        }
                self._touch(pod)
        elif kind == "deadline":
            job = self.jobs.get(key[0], key[1])
            st = self._states.get(key[2])
            if job is not None and st is not None and job["metadata"]["uid"] == key[2] and not self._finished(job):
                st.deadline_hit = True
                self._mark_dirty(key[0], key[1])
        elif kind == "ttl":
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
        elif kind == "wake":
            self._mark_dirty(key[0], key[1])

    @staticmethod
    def _finished(job: Obj) -> bool:
        return any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in job["status"].get("conditions") or []
        )

    def _schedule_ttl(self, job: Obj) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        st = self._states.get(job["metadata"]["uid"])
        finished = st.finished_mono if st is not None and st.finished_mono is not None else time.monotonic()
        delay = max(0.0, finished + ttl * self.time_scale - time.monotonic())
        self._timer(delay, "ttl", job["metadata"]["namespace"], job["metadata"]["name"], job["metadata"]["uid"])

    def _condition(self, type_: str, reason: str, message: str) -> Obj:
        now = now_rfc3339()
        return {
            "type": type_,
            "status": "True",
            "lastProbeTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }

    def _sync_job(self, ns: str, name: str) -> None:
        job = self.jobs.get(ns, name)
        if job is None:
            return
        md, spec = job["metadata"], job["spec"]
        uid = md["uid"]
        st = self._states.setdefault(uid, JobState(uid=uid))
        owned = self._pods_by_owner.setdefault(uid, set())
        if md.get("deletionTimestamp"):
            fins = list(md.get("finalizers") or [])
            if "foregroundDeletion" in fins:
                for pname in sorted(owned):
                    self._remove_pod(ns, pname, count_failure=False)
                fins.remove("foregroundDeletion")
            elif "orphan" in fins:
                for pname in sorted(owned):
                    pod = self.pods.get(ns, pname)
                    if pod is not None:
                        pod["metadata"].pop("ownerReferences", None)
                        self._touch(pod)
                fins.remove("orphan")
                owned.clear()
            if fins:
                # Another controller's finalizer: the Job stays Terminating (and its controller
                # creates no pods) until that controller removes it with an update.
                if fins != md.get("finalizers"):
                    md["finalizers"] = fins
                    self._touch(job)
                return
            if uid in self._background_held:
                self._background_held.discard(uid)
                self._gc_owners[uid] = ns
            else:
                self._pods_by_owner.pop(uid, None)
            self._remove_job(ns, name)
            return
        if self._finished(job):
            return
        now = time.monotonic()
        status = job["status"]
        before = copy.deepcopy(status)
        if spec.get("suspend"):
            return
        if "startTime" not in status:
            status["startTime"] = now_rfc3339()
            if spec.get("activeDeadlineSeconds"):
                self._timer(spec["activeDeadlineSeconds"] * self.time_scale, "deadline", ns, name, uid)
        indexed = spec.get("completionMode") == "Indexed"
        per_index = spec.get("backoffLimitPerIndex")
        pods = [p for p in (self.pods.get(ns, n) for n in sorted(owned)) if p is not None]
        for pod in pods:
            puid = pod["metadata"]["uid"]
            if _is_terminal(pod) and puid not in st.counted:
                st.counted.add(puid)
                if pod["status"]["phase"] == "Succeeded":
                    st.succeeded += 1
                    if indexed:
                        st.completed.add(self._pod_index(pod))
                else:
                    self._count_failure(st, pod, now)
        active = [p for p in pods if not _is_terminal(p)]
        conds: list[Obj] = status.setdefault("conditions", [])
        types = {c["type"] for c in conds}
        completions = spec.get("completions")
        if "FailureTarget" in types or "SuccessCriteriaMet" in types:
            for pod in active:
                self._remove_pod(ns, pod["metadata"]["name"], count_failure="FailureTarget" in types)
            active = []
            if "FailureTarget" in types:
                target = next(c for c in conds if c["type"] == "FailureTarget")
                conds.append(self._condition("Failed", target["reason"], target["message"]))
            else:
                conds.append(
                    self._condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
                )
                status["completionTime"] = now_rfc3339()
            st.finished_mono = now
        else:
            failure: tuple[str, str] | None = None
            success = False
            if st.deadline_hit:
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
            elif indexed and per_index is not None:
                mfi = spec.get("maxFailedIndexes")
                if mfi is not None and len(st.failed_indexes) > mfi:
                    failure = (
                        "MaxFailedIndexesExceeded",
                        "Job has exceeded the specified maximal number of failed indexes",
                    )
                elif len(st.completed | st.failed_indexes) >= (completions or 0) and not any(
                    self._pod_index(p) not in st.failed_indexes for p in active
                ):
                    if st.failed_indexes:
                        failure = ("FailedIndexes", "Job has failed indexes")
                    else:
                        success = True
            elif st.failed > spec.get("backoffLimit", 6):
                failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            if failure is None and not success:
                if indexed:
                    success = len(st.completed) >= (completions or 0)
                elif completions is not None:
                    success = st.succeeded >= completions
                else:
                    success = st.succeeded > 0 and not active
            if failure is not None:
                conds.append(self._condition("FailureTarget", failure[0], failure[1]))
                for pod in active:
                    self._remove_pod(ns, pod["metadata"]["name"], count_failure=True)
                active = []
                self._mark_dirty(ns, name)  # Failed follows once the pods are gone (next pass)
            elif success:
                conds.append(
                    self._condition(
                        "SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"
                    )
                )
                for pod in active:
                    self._remove_pod(ns, pod["metadata"]["name"], count_failure=False)
                active = []
                self._mark_dirty(ns, name)
            else:
                active += self._create_pods(job, st, active, now)
        self._write_status(job, st, active, indexed, per_index)
        if status != before:
            self._touch(job)
        if self._finished(job):
            self._schedule_ttl(job)

    def _write_status(self, job: Obj, st: JobState, active: list[Obj], indexed: bool, per_index: int | None) -> None:
        status = job["status"]
        new: Obj = {}
        if status.get("conditions"):
            new["conditions"] = status["conditions"]
        for k in ("startTime", "completionTime"):
            if k in status:
                new[k] = status[k]
        if active:
            new["active"] = len(active)
        if st.succeeded:
            new["succeeded"] = st.succeeded
        if st.failed:
            new["failed"] = st.failed
        if indexed and st.completed:
            new["completedIndexes"] = index_ranges(st.completed)
        if per_index is not None:
            new["failedIndexes"] = index_ranges(st.failed_indexes)
        new["uncountedTerminatedPods"] = {}
        new["terminating"] = 0
        new["ready"] = sum(1 for p in active if _pod_ready(p))
        status.clear()
        status.update(new)

    def _create_pods(self, job: Obj, st: JobState, active: list[Obj], now: float) -> list[Obj]:
        spec = job["spec"]
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        parallelism = spec.get("parallelism") or 0
        if self.pod_retry_backoff_seconds > 0 and st.failed > 0:
            delay = min(self.pod_retry_backoff_seconds * (2 ** (st.failed - 1)), 360.0) * self.time_scale
            if now < st.last_failure_mono + delay:
                self._timer(st.last_failure_mono + delay - now, "wake", ns, name)
                return []
        created: list[Obj] = []
        if spec.get("completionMode") == "Indexed":
            busy = {self._pod_index(p) for p in active}
            slots = parallelism - len(active)
            for idx in range(spec.get("completions") or 0):
                if slots <= 0:
                    break
                if idx in st.completed or idx in st.failed_indexes or idx in busy:
                    continue
                created.append(self._new_pod(job, st, idx))
                slots -= 1
        else:
            completions = spec.get("completions")
            want = parallelism if completions is None else min(parallelism, completions - st.succeeded)
            for _ in range(max(0, want - len(active))):
                created.append(self._new_pod(job, st, -1))
        return created

    def _new_pod(self, job: Obj, st: JobState, index: int) -> Obj:
        jmd, jspec = job["metadata"], job["spec"]
        ns, jname = jmd["namespace"], jmd["name"]
        tmpl = copy.deepcopy(jspec.get("template") or {})
        tmeta = tmpl.get("metadata") or {}
        spec = tmpl.get("spec") or {}
        labels = dict(tmeta.get("labels") or {})
        annotations = dict(tmeta.get("annotations") or {})
        prefix = job_pod_prefix(jname, index if index >= 0 else None)  # podGenerateNameWithIndex
        if index >= 0:
            labels[COMPLETION_INDEX] = str(index)
            annotations[COMPLETION_INDEX] = str(index)
            if jspec.get("backoffLimitPerIndex") is not None:
                annotations[INDEX_FAILURE_COUNT] = str(st.index_failures.get(index, 0))
            spec.setdefault("hostname", f"{jname}-{index}")
            for c in spec.get("containers") or []:
                env = c.setdefault("env", [])
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                    env.append(
                        {
                            "name": "JOB_COMPLETION_INDEX",
                            "valueFrom": {
                                "fieldRef": {
                                    "apiVersion": "v1",
                                    "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']",
                                }
                            },
                        }
                    )
        pname = generate_name(prefix)
        while self.pods.get(ns, pname) is not None:
            pname = generate_name(prefix)
        md: Obj = {
            "name": pname,
            "generateName": prefix,
            "namespace": ns,
            "uid": str(uuid.uuid4()),
            "resourceVersion": self.next_rv(),
            "creationTimestamp": now_rfc3339(),
            "labels": labels,
        }
        if annotations:
            md["annotations"] = annotations
        md["ownerReferences"] = [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": jname,
                "uid": jmd["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        tols = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(t.get("key") == key and t.get("effect") in (None, "", "NoExecute") for t in tols):
                tols.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
        pod: Obj = {"metadata": md, "spec": spec, "status": {"phase": "Pending", "qosClass": _qos(spec)}}
        self.pods.put(pod)
        self._pods_by_owner.setdefault(jmd["uid"], set()).add(pname)
        st.attempts[index] = st.attempts.get(index, 0) + 1
        self._runtime_attempt[(ns, pname)] = st.attempts[index]
        self._to_schedule[(ns, pname)] = None
        return pod

    # ------------------------------------------------------------------ scheduler

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
            key = (md["namespace"], md["name"])
            # virtual-kubelet calls the provider's CreatePod as soon as the pod is on its node.
            start = self.pod_start_seconds if self.pod_start_seconds is not None else self.aci.settings.start_seconds
            self.aci.create(
                pod,
                start_seconds=start,
                attempt=self._runtime_attempt.pop(key, 1),
                host_ip=node_ip,
                pod_ip=pod_ip,
            )
            self._job_dirty_for(pod)
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
        status["containerStatuses"] = [
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
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
        self._touch(pod)
        start = self.pod_start_seconds if self.pod_start_seconds is not None else KUBELET_START_SECONDS
        self._timer(start * self.time_scale, "start", md["namespace"], md["name"], md["uid"])

    # ------------------------------------------------------------------ kubelet / virtual-kubelet

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
            status["containerStatuses"] = [
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

    def _job_dirty_for(self, pod: Obj) -> None:
        jname = (pod["metadata"].get("labels") or {}).get(JOB_NAME)
        if jname and self._owner_uid(pod):
            self._mark_dirty(pod["metadata"]["namespace"], jname)

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
        items, key, remaining = self.table(res).page(ns, reqs, freqs, start_after, limit)
        return items, (encode_continue(self._rv, key) if key is not None else None), remaining
