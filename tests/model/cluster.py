"""The cluster of the model world: the Kubernetes calls dispatch, the API and the reconciler make,
over dicts, and what the workload does (split from ``tests.model.world``)."""

from __future__ import annotations

import collections
import copy
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.adapters.kube import AdmissionDenied, AlreadyExists, Conflict, KubePermanentError, KubeTransientError, Page
from shared.base.conventions import ANN_KEY, ANN_REPORTED_AT, ANN_REQUEUED, CONTROLLER_UID, LABEL_STATE

if TYPE_CHECKING:
    from tests.model.world import World

QUOTA = (
    "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'ContainerGroups' "
    "exceeded in region 'westeurope'. Limit: '100', Usage: '100' Requested: '1'."
)


# --- the cluster --------------------------------------------------------------------------


@dataclass
class FakeHttp:
    host: str = "https://model.invalid"


class Cluster:
    """The Kubernetes calls dispatch, the API and the reconciler make (``JobStore`` included),
    over dicts with resourceVersion compare-and-swap, finalizers and injected refusals."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.http = FakeHttp()
        self.namespace = "vnode-batch"
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.created_at: dict[str, int] = {}
        """Job uid → world step it was created at."""
        self.refuse: str | None = None
        """``422``, ``webhook`` or ``rbac``: how the next creates are refused (None: accepted)."""
        self.on_create: Callable[[str], object] | None = None
        self.on_log: Callable[[], object] | None = None
        self.fail_next = 0
        self.lose_next: collections.Counter[str] = collections.Counter()
        """Calls (``create``, ``delete``, ``annotate``, ``mark``) whose next answer is lost after
        the call took effect (the soak's faults "after": a create applied, its answer a 500)."""
        self.creates: collections.Counter[str] = collections.Counter()
        """Jobs created per request key (a Job per request, once more per give-back or take-back)."""
        self.condemned: collections.Counter[str] = collections.Counter()
        """Jobs condemned per request key (a capacity give-back: ``shared.capacity.give_back``)."""
        self.taken_back: collections.Counter[str] = collections.Counter()
        """Jobs deleted per request key while unreported, not condemned and not deleting: dispatch
        taking back a Job it created for a request that finished meanwhile (or a cancel)."""
        self._uids = itertools.count(1)
        self._rv = itertools.count(100)

    def _fault(self, what: str) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise KubeTransientError(f"injected: {what} failed (503)", status=503)

    def _answer_lost(self, what: str) -> None:
        """After the call took effect: its answer is lost (a 500 from the client's side)."""
        if self.lose_next[what] > 0:
            self.lose_next[what] -= 1
            raise KubeTransientError(f"injected: {what} took effect, its answer was lost (500)", status=500)

    # dispatch / API
    def create_job(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self._fault("create")
        name = manifest["metadata"]["name"]
        if self.refuse == "422":
            raise KubePermanentError(f'Job.batch "{name}" is invalid: spec.template: Invalid value', status=422)
        if self.refuse == "webhook":
            raise AdmissionDenied(
                f'jobs.batch "{name}" is forbidden: admission webhook "validation.gatekeeper.sh" denied the request: '
                "[azurepolicy-container-allowed-images] image is not allowed",
                status=403,
                reason="AdmissionDenied",
            )
        if self.refuse == "rbac":
            raise KubeTransientError('jobs.batch is forbidden: User "app" cannot create resource "jobs"', status=403)
        if name in self.jobs:
            raise AlreadyExists(f"jobs {name} already exists", status=409, reason="AlreadyExists")
        job = copy.deepcopy(manifest)
        uid = f"00000000-0000-4000-8000-{next(self._uids):012d}"
        job["metadata"].update(uid=uid, resourceVersion=str(next(self._rv)), creationTimestamp=_ts(self.world.now()))
        job["status"] = {}
        self.jobs[name] = job
        self.created_at[uid] = self.world.step
        self.creates[job["metadata"]["annotations"][ANN_KEY]] += 1
        if self.on_create is not None:
            hook, self.on_create = self.on_create, None
            hook(job["metadata"]["annotations"][ANN_KEY])
        self._answer_lost("create")
        return copy.deepcopy(job)

    def get_job(self, name: str) -> dict[str, Any] | None:
        self._fault("get")
        return copy.deepcopy(self.jobs.get(name))

    def delete_job(self, name: str, *, propagation: str = "Background") -> bool:
        self._fault("delete")
        job = self.jobs.get(name)
        if job is None:
            return False
        meta = job["metadata"]
        unreported = meta["labels"].get(LABEL_STATE) != "reported" and not meta.get("deletionTimestamp")
        if unreported and ANN_REQUEUED not in meta["annotations"]:
            self.taken_back[meta["annotations"][ANN_KEY]] += 1
        if job["metadata"].get("finalizers"):
            job["metadata"].setdefault("deletionTimestamp", _ts(self.world.now()))
            job["metadata"]["resourceVersion"] = str(next(self._rv))
        else:
            self._gone(name)
        self._answer_lost("delete")
        return True

    def _gone(self, name: str) -> None:
        job = self.jobs.pop(name)
        uid = job["metadata"]["uid"]
        self.pods = [p for p in self.pods if p["metadata"]["labels"].get(CONTROLLER_UID) != uid]

    @staticmethod
    def _matches(selector: str, labels: Mapping[str, str]) -> bool:
        if " in (" in selector:
            key, _, values = selector.partition(" in (")
            return labels.get(key) in values.rstrip(")").split(",")
        return all(labels.get(k) == v for k, v in (part.split("=", 1) for part in selector.split(",")))

    def list_jobs(self, *, label_selector: str, limit: int, continue_token: str | None = None) -> Page:
        self._fault("list")
        names = sorted(n for n, j in self.jobs.items() if self._matches(label_selector, j["metadata"]["labels"]))
        names = [n for n in names if continue_token is None or n > continue_token]
        page = names[:limit]
        return Page([copy.deepcopy(self.jobs[n]) for n in page], page[-1] if len(names) > limit else None)

    def list_pods(self, *, label_selector: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for p in self.pods if self._matches(label_selector, p["metadata"]["labels"])]

    # reconciler (JobStore)
    def pod_log(self, pod: str, *, tail_lines: int, limit_bytes: int, container: str | None = None) -> str | None:
        if self.on_log is not None:  # another actor runs while the (slow, on ACI) log read is under way
            hook, self.on_log = self.on_log, None
            hook()
        return f"{pod}: done\n"

    def _cas(self, name: str, rv: str) -> dict[str, Any]:
        job = self.jobs.get(name)
        if job is None:
            raise KubePermanentError(f"jobs {name} not found", status=404)
        if rv != job["metadata"]["resourceVersion"]:
            raise Conflict(f"jobs {name}: the object has been modified", status=409)
        return job

    def annotate_job(self, name: str, *, annotations: dict[str, str], resource_version: str) -> dict[str, Any]:
        job = self._cas(name, resource_version)
        job["metadata"].setdefault("annotations", {}).update(annotations)
        job["metadata"]["resourceVersion"] = str(next(self._rv))
        if ANN_REQUEUED in annotations:
            self.condemned[job["metadata"]["annotations"][ANN_KEY]] += 1
        self._answer_lost("annotate")
        return copy.deepcopy(job)

    def mark_reported(
        self, name: str, *, reported_at: str, finalizers: list[str], resource_version: str
    ) -> dict[str, Any]:
        job = self._cas(name, resource_version)
        job["metadata"]["labels"][LABEL_STATE] = "reported"
        job["metadata"]["annotations"][ANN_REPORTED_AT] = reported_at
        job["metadata"]["finalizers"] = finalizers
        job["metadata"]["resourceVersion"] = str(next(self._rv))
        if job["metadata"].get("deletionTimestamp") and not finalizers:
            self._gone(name)
        self._answer_lost("mark")
        return copy.deepcopy(job)

    def delete_pod(self, name: str) -> bool:
        before = len(self.pods)
        self.pods = [p for p in self.pods if p["metadata"]["name"] != name]
        return len(self.pods) < before

    # what the workload does
    def live(self) -> list[str]:
        """Jobs that are neither reported nor being deleted, by name."""
        return sorted(
            n
            for n, j in self.jobs.items()
            if j["metadata"]["labels"].get(LABEL_STATE) != "reported" and not j["metadata"].get("deletionTimestamp")
        )

    def unfinished(self) -> list[str]:
        """Live Jobs without a terminal condition (a finished Job's outcome never changes)."""
        return [
            n
            for n in self.live()
            if not any(c.get("status") == "True" for c in self.jobs[n]["status"].get("conditions") or [])
        ]

    def progress(self, name: str, how: str) -> None:
        """``start``, ``succeed``, ``fail`` or ``refuse`` (ACI refused the pod for quota)."""
        job = self.jobs[name]
        uid = job["metadata"]["uid"]
        now = self.world.now()
        self.pods = [p for p in self.pods if p["metadata"]["labels"].get(CONTROLLER_UID) != uid]
        status: dict[str, Any]
        if how == "start":
            status = {"active": 1, "startTime": _ts(now - timedelta(seconds=2))}
            pod = _pod(name, uid, "Running", now)
        elif how == "succeed":
            status = {
                "startTime": _ts(now - timedelta(seconds=10)),
                "succeeded": 1,
                "completionTime": _ts(now),
                "conditions": [_cond("Complete", "CompletionsReached", "done", now)],
            }
            pod = _pod(name, uid, "Succeeded", now, exit_code=0)
        elif how == "fail":
            status = {
                "startTime": _ts(now - timedelta(seconds=10)),
                "failed": 1,
                "conditions": [
                    _cond("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit", now)
                ],
            }
            pod = _pod(name, uid, "Failed", now, exit_code=2)
        else:
            status = {
                "startTime": _ts(now - timedelta(seconds=10)),
                "failed": 1,
                "conditions": [
                    _cond("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit", now)
                ],
            }
            pod = _pod(name, uid, "Failed", now, refused=QUOTA)
        job["status"] = status
        job["metadata"]["resourceVersion"] = str(next(self._rv))
        self.pods.append(pod)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _cond(kind: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": _ts(now)}


def _pod(
    job: str, uid: str, phase: str, now: datetime, *, exit_code: int | None = None, refused: str | None = None
) -> dict[str, Any]:
    state: dict[str, Any]
    if refused is not None:
        state = {"waiting": {"reason": "ProviderFailed", "message": refused}}
    elif exit_code is not None:
        state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": _ts(now - timedelta(seconds=8)),
                "finishedAt": _ts(now),
            }
        }
    else:
        state = {"running": {"startedAt": _ts(now - timedelta(seconds=1))}}
    status: dict[str, Any] = {"phase": phase, "containerStatuses": [{"name": "main", "state": state}]}
    if refused is not None:
        status.update(reason="ProviderFailed", message=refused)
    return {
        "metadata": {
            "name": f"{job}-p{uid[-4:]}",
            "creationTimestamp": _ts(now - timedelta(seconds=9)),
            "labels": {CONTROLLER_UID: uid},
        },
        "spec": {"nodeName": "virtual-node-aci-linux", "containers": [{"name": "main"}]},
        "status": status,
    }
