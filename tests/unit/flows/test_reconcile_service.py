"""The reconcile pass against an in-memory JobStore (its Protocol, not a patched module).

What is checked here is the order of effects and the failure handling: event before mark,
mark before delete, a crash in between repeats the same event id, one bad Job does not stop
the others, a transient error ends the pass. The integration tests run the same service
against the HTTPS Kubernetes stand-in and Azurite.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.kube import Conflict, KubePermanentError, KubeTransientError, Page
from shared.base.conventions import ANN_REPORTED_AT, ANN_VERDICT, FINALIZER_REPORT
from shared.config.settings import Settings
from shared.flows.reconcile import SELECT_REPORTED, SELECT_UNREPORTED, reconcile
from tests.unit.flows.test_reconcile_events import validate_event
from tests.unit.outcomes.test_reconcile_outcome import NOW, make_job, make_pod


class FakeJobs:
    """A JobStore over dicts: label selectors of the forms the reconciler sends, limit/continue,
    resourceVersion compare-and-swap, and a log of every call."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[str, Exception] = {}  # call name → exception raised once
        self.fail_always: dict[str, Exception] = {}  # call name → raised on every call
        self._rv = 100

    def add(self, name: str, job: dict[str, Any], pods: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        job = copy.deepcopy(job)
        job["metadata"]["name"] = name
        job["metadata"]["uid"] = f"uid-{name}"
        for template in pods:
            pod = copy.deepcopy(template)
            pod["metadata"]["name"] = f"{name}-{pod['metadata']['name']}"
            pod["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] = f"uid-{name}"
            self.pods.append(pod)
        self.jobs[name] = job

    def _call(self, what: str, arg: str) -> None:
        self.calls.append((what, arg))
        if what in self.fail:
            raise self.fail.pop(what)
        if what in self.fail_always:
            raise self.fail_always[what]

    def _bump(self, job: dict[str, Any]) -> None:
        self._rv += 1
        job["metadata"]["resourceVersion"] = str(self._rv)

    @staticmethod
    def _matches(selector: str, labels: dict[str, str]) -> bool:
        if " in (" in selector:
            key, _, values = selector.partition(" in (")
            return labels.get(key) in values.rstrip(")").split(",")
        return all(labels.get(k) == v for k, v in (part.split("=") for part in selector.split(",")))

    def list_jobs(self, *, label_selector: str, limit: int, continue_token: str | None = None) -> Page:
        self._call("list_jobs", label_selector)
        names = sorted(n for n, j in self.jobs.items() if self._matches(label_selector, j["metadata"]["labels"]))
        names = [n for n in names if continue_token is None or n > continue_token]
        page = names[:limit]
        more = len(names) > limit
        return Page([copy.deepcopy(self.jobs[n]) for n in page], page[-1] if more else None)

    def list_pods(self, *, label_selector: str) -> list[dict[str, Any]]:
        self._call("list_pods", label_selector)
        return [copy.deepcopy(p) for p in self.pods if self._matches(label_selector, p["metadata"]["labels"])]

    def pod_log(self, pod: str, *, tail_lines: int, limit_bytes: int, container: str | None = None) -> str | None:
        self._call("pod_log", pod)
        return "".join(f"{pod} line {i}\n" for i in range(100))[-limit_bytes:]

    def get_job(self, name: str) -> dict[str, Any] | None:
        self._call("get_job", name)
        return copy.deepcopy(self.jobs.get(name))

    def _cas(self, name: str, rv: str) -> dict[str, Any]:
        job = self.jobs.get(name)
        if job is None:
            raise KubePermanentError(f"jobs {name} not found", status=404)
        if rv != job["metadata"]["resourceVersion"]:
            raise Conflict(f"jobs {name}: the object has been modified", status=409)
        return job

    def annotate_job(self, name: str, *, annotations: dict[str, str], resource_version: str) -> dict[str, Any]:
        self._call("annotate_job", name)
        job = self._cas(name, resource_version)
        job["metadata"]["annotations"].update(annotations)
        self._bump(job)
        return copy.deepcopy(job)

    def mark_reported(
        self, name: str, *, reported_at: str, finalizers: list[str], resource_version: str
    ) -> dict[str, Any]:
        self._call("mark_reported", name)
        job = self._cas(name, resource_version)
        job["metadata"]["labels"]["vnode-batch.io/state"] = "reported"
        job["metadata"]["annotations"][ANN_REPORTED_AT] = reported_at
        job["metadata"]["finalizers"] = finalizers
        self._bump(job)
        if job["metadata"].get("deletionTimestamp") and not finalizers:
            del self.jobs[name]
        return copy.deepcopy(job)

    def delete_pod(self, name: str) -> bool:
        self._call("delete_pod", name)
        before = len(self.pods)
        self.pods = [p for p in self.pods if p["metadata"]["name"] != name]
        return len(self.pods) < before

    def delete_job(self, name: str, *, propagation: str = "Background") -> bool:
        self._call("delete_job", name)
        assert propagation == "Background"
        job = self.jobs.get(name)
        if job is None:
            return False
        if job["metadata"].get("finalizers"):
            job["metadata"]["deletionTimestamp"] = "2026-11-27T01:05:00Z"
            self._bump(job)
        else:
            del self.jobs[name]
        return True


class Events:
    def __init__(self, crash_after: int | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.crash_after = crash_after

    def __call__(self, text: str) -> str:
        self.sent.append(validate_event(text))
        if self.crash_after is not None and len(self.sent) >= self.crash_after:
            self.crash_after = None
            raise RuntimeError("the process died right after sending")
        return str(len(self.sent))


def done(ok: bool = True) -> dict[str, Any]:
    if ok:
        return make_job(conditions=[("Complete", "CompletionsReached", "done")])
    return make_job(conditions=[("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")])


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Reported Jobs deleted at once, unless a test says otherwise."""
    return make_settings(VNB_KEEP_FINISHED_SECONDS="0")


def pass_(s: Settings, jobs: FakeJobs, events: Callable[[str], object], **kw: Any) -> Any:
    return reconcile(settings=s, jobs=jobs, send_event=events, now=lambda: NOW, workers=1, **kw)


def test_event_then_mark_then_delete_for_every_finished_job(settings: Settings) -> None:
    jobs, events = FakeJobs(), Events()
    jobs.add("a", done(True), [make_pod("p", "Succeeded", exit_code=0)])
    jobs.add("b", done(False), [make_pod("p", "Failed", exit_code=2)])
    jobs.add("c", make_job(status={"active": 1, "ready": 1}))  # running: left alone
    report = pass_(settings, jobs, events)
    assert (report.succeeded, report.failed, report.running, report.deleted) == (1, 1, 1, 2)
    assert [e["type"].rsplit(".", 1)[-1] for e in events.sent] == ["succeeded", "failed"]
    assert list(jobs.jobs) == ["c"]
    order = [c for c in jobs.calls if c[1] == "a" or c[0] in ("list_pods",)]
    assert [c[0] for c in order] == ["list_pods", "mark_reported", "delete_job"]
    assert jobs.calls.index(("mark_reported", "a")) > jobs.calls.index(("pod_log", "a-p"))
    assert len([c for c in jobs.calls if c[0] == "list_pods"]) == 1  # one pod list for the page
    assert report.event_ids == [e["id"] for e in events.sent]


def test_crash_between_send_and_mark_repeats_the_same_event(settings: Settings) -> None:
    jobs = FakeJobs()
    jobs.add("a", done(False), [make_pod("p", "Failed", exit_code=3)])
    crashing = Events(crash_after=1)
    first = pass_(settings, jobs, crashing)
    assert (first.failed, first.errors) == (0, 1)
    assert jobs.jobs["a"]["metadata"]["labels"]["vnode-batch.io/state"] == "unreported"
    again = Events()
    second = pass_(settings, jobs, again)
    assert second.failed == 1
    assert [e["id"] for e in crashing.sent] == [e["id"] for e in again.sent]
    assert crashing.sent[0]["data"] == again.sent[0]["data"]
    assert "a" not in jobs.jobs


def test_an_isolated_transient_error_skips_only_its_job(make_settings: Callable[..., Settings]) -> None:
    s = make_settings(VNB_RECONCILE_PAGE_SIZE="2", VNB_KEEP_FINISHED_SECONDS="0")
    jobs, events = FakeJobs(), Events()
    for name in "abcde":
        jobs.add(name, done(), [make_pod("p", "Succeeded", exit_code=0)])
    jobs.fail["mark_reported"] = KubeTransientError("503 from the API server", status=503)
    report = pass_(s, jobs, events)
    assert report.aborted is None
    assert report.retry_later == 1
    assert report.reported == 4
    assert jobs.jobs["a"]["metadata"]["labels"]["vnode-batch.io/state"] == "unreported"  # sent, not marked
    report = pass_(s, jobs, events)
    assert report.reported == 1
    assert jobs.jobs == {}
    sent = [e["data"]["jobName"] for e in events.sent]
    assert sorted(sent) == ["a", "a", "b", "c", "d", "e"]  # "a" repeated, with the same id
    ids_of_a = {e["id"] for e in events.sent if e["data"]["jobName"] == "a"}
    assert len(ids_of_a) == 1


def test_a_streak_of_transient_errors_ends_the_pass_and_nothing_unsent_is_marked(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(VNB_RECONCILE_PAGE_SIZE="3", VNB_KEEP_FINISHED_SECONDS="0")
    jobs, events = FakeJobs(), Events()
    for name in "abcdefghij":
        jobs.add(name, done(), [make_pod("p", "Succeeded", exit_code=0)])
    jobs.fail_always["mark_reported"] = KubeTransientError("503 from the API server", status=503)
    report = pass_(s, jobs, events)
    assert report.aborted
    assert "503" in report.aborted
    assert report.reported == 0
    assert len([c for c in jobs.calls if c[0] == "list_jobs"]) < 4  # stopped before the last page, no sweep
    assert all(j["metadata"]["labels"]["vnode-batch.io/state"] == "unreported" for j in jobs.jobs.values())
    del jobs.fail_always["mark_reported"]
    report = pass_(s, jobs, events)
    assert report.reported == 10
    assert report.aborted is None
    assert jobs.jobs == {}


def test_one_bad_job_does_not_stop_the_others(settings: Settings) -> None:
    jobs, events = FakeJobs(), Events()
    broken = done()
    broken["status"]["conditions"][0]["lastTransitionTime"] = 12  # garbage from a misbehaving writer
    broken["status"]["completionTime"] = "not a time"
    broken["status"]["succeeded"] = "many"
    jobs.add("a-broken", broken)
    jobs.add("b-fine", done(), [make_pod("p", "Succeeded", exit_code=0)])
    report = pass_(settings, jobs, events)
    assert report.errors == 1
    assert report.succeeded == 1
    assert [e["data"]["jobName"] for e in events.sent] == ["b-fine"]
    assert "a-broken" in jobs.jobs


def test_pages_with_continue_and_only_judged_jobs_cost_pod_lists(make_settings: Callable[..., Settings]) -> None:
    s = make_settings(VNB_RECONCILE_PAGE_SIZE="3", VNB_KEEP_FINISHED_SECONDS="0")
    jobs, events = FakeJobs(), Events()
    for i in range(7):
        jobs.add(f"run-{i}", make_job(status={"active": 1, "ready": 1}))
    for i in range(4):
        jobs.add(f"z-done-{i}", done(), [make_pod("p", "Succeeded", exit_code=0)])
    report = pass_(s, jobs, events)
    assert (report.scanned, report.running, report.succeeded) == (11, 7, 4)
    lists = [c for c in jobs.calls if c[0] == "list_jobs"]
    assert lists.count(("list_jobs", SELECT_UNREPORTED)) == 4  # ceil(11 / 3)
    assert lists[-1] == ("list_jobs", SELECT_REPORTED)  # the sweep
    assert len([c for c in jobs.calls if c[0] == "list_pods"]) == 2  # only pages with finished Jobs


def test_stuck_job_gets_its_verdict_written_before_the_event(make_settings: Callable[..., Settings]) -> None:
    s = make_settings(VNB_PENDING_TIMEOUT_SECONDS="60", VNB_KEEP_FINISHED_SECONDS="600")
    jobs, events = FakeJobs(), Events(crash_after=1)
    jobs.add(
        "stuck",
        make_job(status={"active": 1, "ready": 0}),
        [make_pod("p", "Pending", waiting=("ErrImagePull", "not found"))],
    )
    pass_(s, jobs, events)
    verdict = json.loads(jobs.jobs["stuck"]["metadata"]["annotations"][ANN_VERDICT])
    assert verdict["reason"] == "ErrImagePull"
    # The pod now starts (the verdict stands: the same event is repeated, then the Job goes).
    jobs.pods[0]["status"] = {"phase": "Running", "containerStatuses": [{"name": "main", "state": {"running": {}}}]}
    pass_(s, jobs, events)
    assert [e["data"]["reason"] for e in events.sent] == ["ErrImagePull", "ErrImagePull"]
    assert events.sent[0]["id"] == events.sent[1]["id"]
    assert "stuck" not in jobs.jobs


def test_lost_job_is_reported_and_its_finalizer_released(settings: Settings) -> None:
    jobs, events = FakeJobs(), Events()
    jobs.add("gone", make_job(status={"active": 1, "ready": 1}, deleting=True), [make_pod("p", "Running")])
    report = pass_(settings, jobs, events)
    assert report.failed == 1
    assert events.sent[0]["data"]["reason"] == "Lost"
    assert "gone" not in jobs.jobs  # the finalizer was the last thing holding it
    assert ("delete_job", "gone") not in jobs.calls


def test_conflict_on_mark_reads_again_and_retries_once(settings: Settings) -> None:
    jobs, events = FakeJobs(), Events()
    jobs.add("a", done(), [make_pod("p", "Succeeded", exit_code=0)])
    jobs.jobs["a"]["metadata"]["finalizers"] = [FINALIZER_REPORT, "example.com/other"]
    jobs.fail["mark_reported"] = Conflict("modified", status=409)
    report = pass_(settings, jobs, events)
    assert report.succeeded == 1
    assert ("get_job", "a") in jobs.calls
    assert jobs.jobs["a"]["metadata"]["finalizers"] == ["example.com/other"]  # other finalizers kept
    assert jobs.jobs["a"]["metadata"].get("deletionTimestamp")  # deleted, held by the other finalizer


def test_reported_jobs_lose_their_pods_at_once_and_are_swept_after_the_keep_time(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(VNB_KEEP_FINISHED_SECONDS="300")
    jobs, events = FakeJobs(), Events()
    jobs.add("a", done(), [make_pod("p1", "Failed", exit_code=1), make_pod("p2", "Succeeded", exit_code=0)])
    report = reconcile(settings=s, jobs=jobs, send_event=events, now=lambda: NOW, workers=1)
    assert (report.succeeded, report.deleted, report.pods_deleted, report.swept) == (1, 0, 2, 0)
    assert jobs.jobs["a"]["metadata"]["labels"]["vnode-batch.io/state"] == "reported"
    assert jobs.pods == []  # the ACI container groups are freed; the Job stays for idempotency
    later = NOW + timedelta(seconds=301)
    report = reconcile(settings=s, jobs=jobs, send_event=events, now=lambda: later, workers=1)
    assert (report.scanned, report.swept) == (0, 1)
    assert len(events.sent) == 1
    assert jobs.jobs == {}


def test_a_job_that_vanished_before_the_mark_is_fine(settings: Settings) -> None:
    jobs, events = FakeJobs(), Events()
    jobs.add("a", done(), [make_pod("p", "Succeeded", exit_code=0)])
    jobs.fail["mark_reported"] = KubePermanentError("jobs a not found", status=404)
    report = pass_(settings, jobs, events)
    assert (report.succeeded, report.errors) == (1, 0)


@pytest.mark.parametrize("workers", [1, 8])
def test_many_jobs_concurrently(make_settings: Callable[..., Settings], workers: int) -> None:
    s = make_settings(VNB_RECONCILE_PAGE_SIZE="50", VNB_KEEP_FINISHED_SECONDS="0")
    jobs, events = FakeJobs(), Events()
    for i in range(120):
        jobs.add(
            f"j-{i:03d}",
            done(i % 3 != 0),
            [make_pod("p", "Succeeded" if i % 3 else "Failed", exit_code=0 if i % 3 else 1)],
        )
    report = reconcile(settings=s, jobs=jobs, send_event=events, now=lambda: datetime.now(UTC), workers=workers)
    assert (report.succeeded, report.failed, report.errors) == (80, 40, 0)
    assert len({e["id"] for e in events.sent}) == 120
    assert jobs.jobs == {}


# --- capacity refusals (issue 11) ---------------------------------------------------------

QUOTA = (
    "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'ContainerGroups' "
    "exceeded in region 'westeurope'. Limit: '100', Usage: '100' Requested: '1'."
)
REQUEST = {"id": "order-42", "image": "mcr.microsoft.com/azurelinux/base/core:3.0"}


def refused_job(attempt: int, *, terminal: bool = True) -> dict[str, Any]:
    annotations = {"vnode-batch.io/request": json.dumps(REQUEST), "vnode-batch.io/capacity-attempt": str(attempt)}
    if terminal:
        conditions = [("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]
        return make_job(conditions=conditions, annotations=annotations, status={"failed": 1})
    return make_job(annotations=annotations, status={"failed": 1, "active": 1})


def refused_pod(message: str = QUOTA) -> dict[str, Any]:
    return make_pod("p", "Failed", reason="ProviderFailed", message=message, waiting=("ProviderFailed", message))


class Requeue:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def __call__(self, text: str, delay: int) -> None:
        self.sent.append((json.loads(text), delay))


@pytest.mark.parametrize("terminal", [True, False])
def test_a_quota_refusal_gives_the_request_back_to_the_queue_without_an_event(
    settings: Settings, terminal: bool
) -> None:
    jobs, events, requeue, refusals = FakeJobs(), Events(), Requeue(), []
    jobs.add("a", refused_job(0, terminal=terminal), [refused_pod()])
    report = pass_(settings, jobs, events, requeue=requeue, on_refusal=lambda why, created: refusals.append(why))
    assert events.sent == []
    assert (report.requeued, report.failed) == (1, 0)
    [(message, delay)] = requeue.sent
    assert message["request"] == REQUEST
    assert message["vnodeBatchDeferred"]["key"] == "order-42"
    assert message["vnodeBatchDeferred"]["capacityAttempts"] == 1
    assert delay == settings.capacity_defer_seconds
    assert "a" not in jobs.jobs  # deleted, finalizer removed: the next attempt can reuse the name
    assert refusals
    assert "quota" in refusals[0]
    assert jobs.calls.index(("delete_job", "a")) < jobs.calls.index(("mark_reported", "a"))


def test_out_of_capacity_attempts_the_job_fails_capacity_exhausted(settings: Settings) -> None:
    jobs, events, requeue = FakeJobs(), Events(), Requeue()
    jobs.add("a", refused_job(settings.capacity_max_attempts - 1), [refused_pod()])
    report = pass_(settings, jobs, events, requeue=requeue)
    assert requeue.sent == []
    [event] = events.sent
    assert event["type"].endswith("job.failed")
    assert event["data"]["reason"] == "CapacityExhausted"
    assert "quota" in event["data"]["message"]
    assert event["data"]["providerFailure"]["class"] == "quotaOrCapacity"
    assert report.failed == 1


def test_an_invalid_for_aci_refusal_stays_the_requests_failure(settings: Settings) -> None:
    jobs, events, requeue = FakeJobs(), Events(), Requeue()
    bad = "InvalidContainerGroupName: the container group name 'vnode-batch-a--b' is invalid"
    jobs.add("a", refused_job(0), [refused_pod(bad)])
    pass_(settings, jobs, events, requeue=requeue)
    assert requeue.sent == []
    [event] = events.sent
    assert event["data"]["reason"] == "ProviderFailed"


def test_a_pod_not_deleted_after_its_job_was_reported_is_deleted_next_pass(
    make_settings: Callable[..., Settings],
) -> None:
    # Its ACI container group holds quota until the pod is gone, and no later pass lists the
    # (reported) Job again.
    s = make_settings(VNB_KEEP_FINISHED_SECONDS="3600")
    jobs, events, leftovers = FakeJobs(), Events(), set()  # type: ignore[var-annotated]
    jobs.add("a", done(True), [make_pod("p", "Succeeded", exit_code=0)])
    jobs.fail["delete_pod"] = KubeTransientError("injected 500", status=500)
    first = pass_(s, jobs, events, leftover_pods=leftovers)
    assert first.succeeded == 1
    assert leftovers == {"a-p"}
    assert [p["metadata"]["name"] for p in jobs.pods] == ["a-p"]
    pass_(s, jobs, events, leftover_pods=leftovers)
    assert jobs.pods == []
    assert leftovers == set()
    assert len(events.sent) == 1


class MarkAppliedAnswerLost(FakeJobs):
    """The PATCH that marks a Job reported takes effect, then the answer is lost (a 500 after)."""

    lost = True

    def mark_reported(
        self, name: str, *, reported_at: str, finalizers: list[str], resource_version: str
    ) -> dict[str, Any]:
        result = super().mark_reported(
            name, reported_at=reported_at, finalizers=finalizers, resource_version=resource_version
        )
        if self.lost:
            self.lost = False
            raise KubeTransientError("injected 500 after the patch applied", status=500)
        return result


def test_pods_of_a_job_marked_while_the_answer_was_lost_are_still_deleted(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(VNB_KEEP_FINISHED_SECONDS="3600")
    jobs, events, leftovers = MarkAppliedAnswerLost(), Events(), set()  # type: ignore[var-annotated]
    jobs.add("a", done(True), [make_pod("p", "Succeeded", exit_code=0)])
    pass_(s, jobs, events, leftover_pods=leftovers)
    assert jobs.jobs["a"]["metadata"]["labels"]["vnode-batch.io/state"] == "reported"
    pass_(s, jobs, events, leftover_pods=leftovers)  # lists no unreported Job, but deletes the pod
    assert jobs.pods == []
    assert len(events.sent) == 1
