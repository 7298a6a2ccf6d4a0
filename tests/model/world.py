"""An in-memory world for the real services: a ledger table, the requests queue with the host's
delivery rules, a cluster with Jobs and pods, the events queue — each implementing the protocol
the services already accept (``TableStore``, ``JobStore``, the Cluster calls dispatch and the
API make, ``Requeue``, ``SendEvent``). No project module is patched.

Faults are injected through the same protocols: Table errors (transient), a table that refuses an
entity like Table storage does (400: bad key characters, strings UTF-8 cannot encode, too long),
queue send failures, crashes between a service's ledger write and its event, a Kubernetes create
refused (422, webhook 403, RBAC 403), and hooks that run another actor in the middle of a call
(a DELETE while the reconciler reads logs, or while dispatch creates the Job).

The host rules followed (devtools/host/queues.py cites the WebJobs sources): a failed invocation
leaves its message to be delivered again with its dequeue count raised; at ``maxDequeueCount``
(host.json: 5) the body is copied to ``<queue>-poison`` as a new message and the deadletter
function runs on it; the events a queue function returns are written only when it succeeds.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.kube import AdmissionDenied, AlreadyExists, Conflict, KubePermanentError, KubeTransientError, Page
from shared.adapters.tables import EntityChanged, EntityExists, EntityPage, EntityRefused, Stored, TableError
from shared.base.conventions import ANN_KEY, ANN_REPORTED_AT, CONTROLLER_UID, LABEL_STATE
from shared.base.errors import TransientError
from shared.capacity.admission import Decision
from shared.cluster.readiness import Readiness
from shared.config.settings import Settings
from shared.flows.deadletter import deadletter
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound
from shared.flows.reconcile import reconcile
from shared.ledger.api import RequestsApi
from shared.ledger.outcome_writer import flush
from shared.ledger.records import TERMINAL, State, from_entity
from shared.ledger.store import Ledger
from tests.conftest import make_env

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
MAX_DEQUEUE = 5
ENV = {
    "VNB_KEEP_FINISHED_SECONDS": "0",
    "VNB_BOOTSTRAP_MAX_WAIT_SECONDS": "600",
    "VNB_CAPACITY_MAX_WAIT_SECONDS": "1200",
    "VNB_CAPACITY_CORES": "4",
    "VNB_PERMISSION_GRACE_SECONDS": "60",
}
STATE_OF_TYPE = {
    "io.vnodebatch.job.succeeded": State.SUCCEEDED,
    "io.vnodebatch.job.failed": State.FAILED,
    "io.vnodebatch.request.rejected": State.REJECTED,
    "io.vnodebatch.request.deadlettered": State.DEADLETTERED,
    "io.vnodebatch.request.cancelled": State.CANCELLED,
    "io.vnodebatch.job.cancelled": State.CANCELLED,
}
QUOTA = (
    "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'ContainerGroups' "
    "exceeded in region 'westeurope'. Limit: '100', Usage: '100' Requested: '1'."
)


def model_settings(**overrides: str) -> Settings:
    return Settings.from_env(make_env(**{**ENV, **overrides}))


class Crash(Exception):
    """The process died here (not a VnbError: nothing in the app expects it)."""


# --- the ledger table ---------------------------------------------------------------------

_BAD_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


class MemTable:
    """``TableStore`` in memory: ETags, insert-if-absent, replace-if-ETag, Table storage's 400
    rules for keys and strings, injected transient faults, and a note of when each key turned
    terminal (the step counter of the world)."""

    def __init__(self, world: World | None = None) -> None:
        self.rows: dict[str, tuple[dict[str, Any], str]] = {}
        self.fail_next = 0
        self._etags = itertools.count(1)
        self.world = world
        self.terminal_at: dict[str, int] = {}
        self.calls = 0

    def _fault(self, what: str) -> None:
        self.calls += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            raise TableError(f"injected: {what} failed (503)", status=503)

    @staticmethod
    def _check(entity: Mapping[str, Any]) -> None:
        # Table service: PartitionKey/RowKey may not hold / \ # ? or control characters and are at
        # most 1 KiB; a string property is at most 64 KiB (32 K UTF-16 characters); the request is
        # UTF-8 (learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model).
        for name in ("PartitionKey", "RowKey"):
            value = str(entity[name])
            if _BAD_KEY.search(value) or len(value.encode("utf-8", "surrogatepass")) > 1024:
                raise EntityRefused(f"400 InvalidInput: {name}", status=400)
        for name, value in entity.items():
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise EntityRefused(f"400 InvalidInput: {name} is not UTF-8", status=400) from None
                if len(value.encode("utf-16-le")) > 64 * 1024:
                    raise EntityRefused(f"400 PropertyValueTooLarge: {name}", status=400)

    def _note(self, entity: Mapping[str, Any]) -> None:
        if entity.get("state") in {s.value for s in TERMINAL}:
            key = str(entity["key"])
            self.terminal_at.setdefault(key, self.world.step if self.world else 0)

    def get(self, partition_key: str, row_key: str) -> Stored | None:
        self._fault("get")
        row = self.rows.get(partition_key)
        return None if row is None else Stored(copy.deepcopy(row[0]), row[1])

    def insert(self, entity: Mapping[str, Any]) -> str:
        self._fault("insert")
        self._check(entity)
        pk = str(entity["PartitionKey"])
        if pk in self.rows:
            raise EntityExists(pk)
        etag = f"e{next(self._etags)}"
        self.rows[pk] = (copy.deepcopy(dict(entity)), etag)
        self._note(entity)
        return etag

    def replace(self, entity: Mapping[str, Any], *, etag: str) -> str:
        self._fault("replace")
        self._check(entity)
        pk = str(entity["PartitionKey"])
        row = self.rows.get(pk)
        if row is None or row[1] != etag:
            raise EntityChanged(pk)
        new = f"e{next(self._etags)}"
        self.rows[pk] = (copy.deepcopy(dict(entity)), new)
        self._note(entity)
        return new

    def delete(self, partition_key: str, row_key: str, *, etag: str) -> bool:
        self._fault("delete")
        row = self.rows.get(partition_key)
        if row is None or row[1] != etag:
            return False
        del self.rows[partition_key]
        return True

    def query(
        self,
        query_filter: str,
        *,
        parameters: Mapping[str, Any],
        page_size: int,
        continuation: Mapping[str, Any] | None = None,
    ) -> EntityPage:
        """The filters ``shared.ledger.records.query_filter`` and ``Ledger.purge`` write:
        ``A eq 'x'`` and ``A eq|ge|lt @p`` joined by ``and``; continuation = next PartitionKey."""
        self._fault("query")
        tests: list[Callable[[Mapping[str, Any]], bool]] = []
        for part in query_filter.split(" and "):
            name, op, value = part.split(" ", 2)
            want = value.strip("'") if value.startswith("'") else parameters[value.lstrip("@")]
            ops = {"eq": lambda a, b: a == b, "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b}
            tests.append(
                lambda e, n=name, o=ops[op], w=want: n in e and o(str(e[n]), str(w))  # type: ignore[misc]
            )
        start = str((continuation or {}).get("PartitionKey") or "")
        keys = sorted(k for k in self.rows if k >= start)
        hits = [k for k in keys if all(t(self.rows[k][0]) for t in tests)]
        page, more = hits[:page_size], hits[page_size:]
        items = [Stored(copy.deepcopy(self.rows[k][0]), self.rows[k][1]) for k in page]
        return EntityPage(items=items, continuation={"PartitionKey": more[0]} if more else None)

    def records_by_pk(self, partition_key: str) -> Any:
        entity, etag = self.rows[partition_key]
        return from_entity(entity, etag=etag)

    def records(self) -> dict[str, Any]:
        return {str(e["key"]): from_entity(e, etag=t) for e, t in self.rows.values()}


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
        self._uids = itertools.count(1)
        self._rv = itertools.count(100)

    def _fault(self, what: str) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise KubeTransientError(f"injected: {what} failed (503)", status=503)

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
        if self.on_create is not None:
            hook, self.on_create = self.on_create, None
            hook(job["metadata"]["annotations"][ANN_KEY])
        return copy.deepcopy(job)

    def get_job(self, name: str) -> dict[str, Any] | None:
        self._fault("get")
        return copy.deepcopy(self.jobs.get(name))

    def delete_job(self, name: str, *, propagation: str = "Background") -> bool:
        self._fault("delete")
        job = self.jobs.get(name)
        if job is None:
            return False
        if job["metadata"].get("finalizers"):
            job["metadata"].setdefault("deletionTimestamp", _ts(self.world.now()))
            job["metadata"]["resourceVersion"] = str(next(self._rv))
        else:
            self._gone(name)
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


# --- the queues and the host ----------------------------------------------------------------


@dataclass
class Message:
    id: str
    body: bytes
    dequeue_count: int = 0
    inserted_at: datetime = T0
    poison: bool = False
    crashes: int = 0


@dataclass
class Sent:
    """One event written to the events queue, and by whom."""

    event: dict[str, Any]
    by: str
    step: int


class Admission:
    """The capacity view dispatch asks (``shared.capacity.admission.Admission``'s calls): all or nothing."""

    def __init__(self) -> None:
        self.open = True
        self._tickets = itertools.count(1)

    def admit(
        self,
        source: Any,
        demand: Any,
        *,
        key: str,
        first_seen: datetime,
        now: datetime,
        job: str = "",
        team: str = "",
        priority: str = "normal",
    ) -> Decision:
        if self.open:
            return Decision(True, ticket=next(self._tickets))
        return Decision(False, reason="waiting for capacity: cores", delay=5)

    def created(self, ticket: int) -> None:
        pass

    def refund(self, ticket: int) -> None:
        pass


@dataclass
class World:
    settings: Settings = field(default_factory=model_settings)
    step: int = 0
    clock: datetime = T0

    def __post_init__(self) -> None:
        self.table = MemTable(self)
        self.ledger = Ledger(self.table)
        self.cluster = Cluster(self)
        self.admission = Admission()
        self.ready = True
        self.queue: list[Message] = []
        self.sent: list[Sent] = []
        self.send_fails = 0
        self.crash_after_send = 0
        self.enqueue_fails = 0
        self._ids = itertools.count(1)
        self.api = RequestsApi(
            settings=self.settings,
            ledger=self.ledger,
            enqueue=self.enqueue,
            send_event=self.send_event,
            cluster=lambda: self.cluster,  # type: ignore[arg-type,return-value]
            now=self.now,
        )

    def now(self) -> datetime:
        return self.clock

    def message_id(self) -> str:
        return f"00000000-0000-4000-a000-{next(self._ids):012d}"

    # queue side
    def produce(self, text: str | bytes) -> Message:
        """A producer's send (not the app's: it does not meet the app's injected faults)."""
        raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        self.queue.append(Message(self.message_id(), raw, inserted_at=self.clock))
        return self.queue[-1]

    def enqueue(self, text: str) -> None:
        if self.enqueue_fails > 0:
            self.enqueue_fails -= 1
            raise TransientError("injected: queue send failed (503)", status=503)
        self.queue.append(Message(self.message_id(), text.encode(), inserted_at=self.clock))

    def requeue(self, text: str, delay: int) -> None:
        self.enqueue(text)

    def send_event(self, text: str) -> None:
        """The queue client's send (reconciler, API): fails before sending, or crashes after."""
        if self.send_fails > 0:
            self.send_fails -= 1
            raise TransientError("injected: events queue send failed (503)", status=503)
        self.sent.append(Sent(json.loads(text), "client", self.step))
        if self.crash_after_send > 0:
            self.crash_after_send -= 1
            raise Crash("the process died right after sending")

    def gate(self) -> Any:
        world = self

        class Gate:
            def check(self) -> Readiness:
                if world.ready:
                    return Readiness(cluster=world.cluster, reason="ready")  # type: ignore[arg-type]
                return Readiness(cluster=None, reason="cluster: Creating")

        return Gate()

    def deliver(self, message: Message, *, crash: bool = False) -> str:
        """One invocation of a queue function on ``message``, with the host's rules around it.
        ``crash``: the process dies after the function ran, before the host wrote its events."""
        message.dequeue_count += 1
        try:
            if message.poison:
                event = deadletter(
                    Inbound(message.id, message.body, message.dequeue_count, message.inserted_at),
                    settings=self.settings,
                    now=self.clock,
                    ledger=self.ledger,
                )
                texts = [event] if event is not None else []
            else:
                result = dispatch(
                    Inbound(message.id, message.body, message.dequeue_count, message.inserted_at),
                    settings=self.settings,
                    gate=self.gate(),
                    requeue=self.requeue,
                    now=self.now,
                    ledger=self.ledger,
                    admission=self.admission,  # type: ignore[arg-type]
                )
                texts = result.events
            if crash:
                raise Crash("the worker died before the host wrote the outputs")
        except (TransientError, Crash) as e:
            if message.poison:
                raise AssertionError(f"the deadletter function failed: {e!r}") from e
            if message.dequeue_count >= MAX_DEQUEUE:
                self.queue.remove(message)
                self.queue.append(Message(self.message_id(), message.body, inserted_at=self.clock, poison=True))
                return "poisoned"
            return "retry"
        self.queue.remove(message)
        for text in texts:
            self.sent.append(Sent(json.loads(text), "binding", self.step))
        return "done"

    def reconcile(self) -> Any:
        """One timer run: a reconcile pass, then (as ``reconcile.run`` does at each sweep) the
        kept events a DELETE cut short left unsent."""
        report = reconcile(
            settings=self.settings,
            jobs=self.cluster,  # type: ignore[arg-type]
            send_event=self.send_event,
            now=self.now,
            workers=1,
            sweep=False,
            ledger=self.ledger,
            requeue=self.requeue,
        )
        try:
            flush(self.ledger, self.send_event, self.clock)
        except (TransientError, Crash):
            pass  # the next run retries
        return report
