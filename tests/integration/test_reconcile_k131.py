"""The reconciler against the stand-in's 1.31+ Job controller and node lifecycle (real SDK, real
sockets, Azurite not needed: events go to a list through the service's ``send_event``).

Each test is a case of issue 18's "Why": pods stuck Terminating behind a ``FailureTarget``, a
virtual-node outage, log reads failing with 5xx, a deadline kill read between the last pod's
removal and the controller's next sync, a continue token expiring mid-listing. Durations in
manifests are simulated seconds (``TIME_SCALE``); the app's clock is the real one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from devtools.host import exported_settings
from devtools.standins.kube.apiserver import KubeStandIn
from devtools.standins.virtual_node.provider import AciSettings
from shared.adapters.kube import Cluster, from_kubeconfig_dict
from shared.base.conventions import ANN_VERDICT
from shared.config.settings import Settings
from shared.flows.reconcile import KubeJobs, reconcile
from shared.flows.reconcile_pass import ReconcileReport
from shared.intake.request import parse_request
from shared.job.render import JobMeta, build_job
from tests.conftest import BASE_ENV, wait_for
from tests.unit.flows.test_reconcile_events import validate_event

pytestmark = pytest.mark.integration

NS = "vnode-batch"
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
TIME_SCALE = 0.01
"""One simulated second is 10 ms: the 300 s eviction toleration takes 3 s of wall clock."""


@pytest.fixture
def kube() -> Iterator[KubeStandIn]:
    with KubeStandIn(time_scale=TIME_SCALE, aci=AciSettings(start_seconds=2.0)) as server:
        yield server


class Sink:
    """The events queue: every event validated against its schema; its ``data`` kept, in order."""

    def __init__(self, on_send: Callable[[], None] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.on_send = on_send

    def __call__(self, text: str) -> str:
        with self.lock:
            self.events.append(validate_event(text)["data"])
        if self.on_send is not None:
            self.on_send()
        return str(len(self.events))

    def by_job(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for e in self.events:
            out.setdefault(e["jobName"], []).append(e)
        return out


class App:
    """The reconcile service as the timer runs it, over the stand-in."""

    def __init__(self, kube: KubeStandIn, **env: str) -> None:
        full = {**BASE_ENV, "VNB_KEEP_FINISHED_SECONDS": "0", "VNB_PENDING_TIMEOUT_SECONDS": "1", **env}
        with exported_settings(full):
            self.settings = Settings.from_env(full)
        self.cluster = Cluster(from_kubeconfig_dict(kube.kubeconfig_dict(), context=None, timeout=5), NS)

    def submit(self, key: str, **request: Any) -> str:
        parsed = parse_request({"image": IMAGE, **request}, settings=self.settings)
        manifest = build_job(parsed, JobMeta(key=key, message_id=f"m-{key}", enqueued_at=None), settings=self.settings)
        self.cluster.create_job(manifest)
        return str(manifest["metadata"]["name"])

    def reconcile(self, sink: Sink) -> ReconcileReport:
        return reconcile(settings=self.settings, jobs=KubeJobs(self.cluster), send_event=sink, workers=4)


def conditions(kube: KubeStandIn, name: str) -> set[str]:
    job = kube.job(NS, name)
    return {c["type"] for c in (job or {}).get("status", {}).get("conditions") or [] if c["status"] == "True"}


def pods_of(kube: KubeStandIn, names: set[str]) -> list[dict[str, Any]]:
    return [p for p in kube.pods(NS) if p["metadata"]["labels"].get("batch.kubernetes.io/job-name") in names]


def running(kube: KubeStandIn, name: str) -> bool:
    return any(p["status"].get("phase") == "Running" for p in pods_of(kube, {name}))


def started(kube: KubeStandIn, name: str) -> bool:
    return any(p["status"].get("phase") in ("Running", "Succeeded") for p in pods_of(kube, {name}))


def test_failure_target_with_pods_stuck_terminating_is_reported_exactly_once(kube: KubeStandIn) -> None:
    app = App(kube)
    name = app.submit("stuck-1", command=["sh", "-c", "echo working; sleep 100000"], timeoutSeconds=60)
    wait_for(lambda: running(kube, name), what="the pod to run")
    kube.virtual_node_down()  # virtual-kubelet stops: nothing will confirm the pod's deletion
    wait_for(lambda: "FailureTarget" in conditions(kube, name), what="the deadline's FailureTarget")
    sink = Sink()
    for _ in range(3):
        app.reconcile(sink)
    assert [(d["jobName"], d["outcome"], d["reason"]) for d in sink.events] == [(name, "failed", "DeadlineExceeded")]
    assert "Failed" not in conditions(kube, name)  # Kubernetes still waits for the terminating pod
    [stuck] = pods_of(kube, {name})
    assert stuck["metadata"].get("deletionTimestamp")
    kube.virtual_node_up()  # virtual-kubelet deletes the container group, then the pod
    wait_for(lambda: not pods_of(kube, {name}), what="the pod to go once virtual-kubelet is back")
    assert kube.aci_counters()["groups_in_use"] == 0
    app.reconcile(sink)
    assert len(sink.events) == 1


def test_a_virtual_node_outage_reports_every_request_once_and_leaves_no_pod(kube: KubeStandIn) -> None:
    app = App(kube)
    names = {
        app.submit(
            f"outage-{i}", command=["sh", "-c", f"echo job {i}; sleep {200 + 100 * (i % 10)}"], timeoutSeconds=3600
        )
        for i in range(50)
    }
    # Started, not all running: on a loaded machine the 200 s sleepers may end before the last starts.
    wait_for(lambda: all(started(kube, n) for n in names), what="50 Jobs to start", timeout=30)
    sink = Sink()
    kube.virtual_node_down()
    # 10 simulated minutes of outage, the reconciler running throughout (its own clock is real).
    outage = threading.Event()
    timer = threading.Timer(600 * TIME_SCALE, outage.set)
    timer.start()
    while not outage.is_set():
        report = app.reconcile(sink)
        assert report.aborted is None
        outage.wait(0.2)
    kube.virtual_node_up()
    wait_for(lambda: not app.reconcile(sink).scanned, what="every Job to be reported", timeout=30)
    by_job = sink.by_job()
    assert set(by_job) == names
    assert all(len(v) == 1 for v in by_job.values()), "one event per request"
    assert {d["reason"] for v in by_job.values() for d in v} <= {"VirtualNodeDown", "Completed"}
    down = [d for v in by_job.values() for d in v if d["reason"] == "VirtualNodeDown"]
    assert down, "Jobs running when virtual-kubelet stopped were evicted"
    assert "stay Terminating" in down[0]["message"]
    wait_for(lambda: not pods_of(kube, names), what="0 pods of reported Jobs left", timeout=30)
    assert kube.aci_counters()["groups_in_use"] == 0, "no container group leaked"


def test_log_500s_on_one_job_do_not_delay_the_others(kube: KubeStandIn) -> None:
    app = App(kube)
    sick = app.submit("sick-1", command=["sh", "-c", "echo sick; exit 2"])
    well = {i: app.submit(f"well-{i}", command=["sh", "-c", f"echo well {i}"]) for i in range(6)}
    wait_for(lambda: all(conditions(kube, n) & {"Failed", "Complete"} for n in [sick, *well.values()]), what="all")
    kube.aci_fail_logs(1000, pod_prefix=sick)  # ARM throttles ListLogs for this group, every time
    sink = Sink()
    report = app.reconcile(sink)
    assert report.aborted is None
    by_job = sink.by_job()
    assert set(by_job) == {sick, *well.values()}, "every Job reported in the same pass"
    [tail] = by_job[sick][0]["logTail"]
    assert tail["text"] == ""
    assert "429" in tail["unavailable"]
    assert by_job[sick][0]["reason"] == "BackoffLimitExceeded"
    assert [by_job[n][0]["logTail"][0]["text"] for n in well.values()] == [f"well {i}\n" for i in well]


def test_a_deadline_kill_read_before_the_next_sync_is_deadline_exceeded(kube: KubeStandIn) -> None:
    app = App(kube)
    name = app.submit("deadline-1", command=["sh", "-c", "echo started; sleep 100000"], timeoutSeconds=150)
    wait_for(lambda: "FailureTarget" in conditions(kube, name), what="the deadline")
    kube.pause_job_controller()  # the window before the controller's next (batched) sync
    try:
        wait_for(lambda: not pods_of(kube, {name}), what="virtual-kubelet to remove the pod")
        assert "Failed" not in conditions(kube, name)
        sink = Sink()
        app.reconcile(sink)  # the Job is older than VNB_PENDING_TIMEOUT_SECONDS=1, with no pod
    finally:
        kube.pause_job_controller(False)
    assert [(d["outcome"], d["reason"]) for d in sink.events] == [("failed", "DeadlineExceeded")]


def test_a_continue_token_expiring_mid_listing_loses_no_job(kube: KubeStandIn) -> None:
    app = App(kube, VNB_RECONCILE_PAGE_SIZE="2")
    names = {app.submit(f"page-{i}", command=["sh", "-c", f"echo {i}"]) for i in range(7)}
    wait_for(lambda: all("Complete" in conditions(kube, n) for n in names), what="7 Jobs to complete")
    sink = Sink(on_send=kube.expire_continue_tokens)  # etcd compacts while the first page is settled
    report = app.reconcile(sink)
    assert report.aborted is None
    assert sorted(sink.by_job()) == sorted(names)
    assert all(len(v) == 1 for v in sink.by_job().values())
    assert json.dumps(kube.jobs(NS)) == "[]"


def test_a_job_whose_failed_pod_is_gone_but_uncounted_is_not_judged_pending() -> None:
    """Between removing a finished pod's tracking finalizer (a deleted pod is then gone) and the
    status update that moves it to ``failed``, the Job shows no pod, no counter, no condition —
    only the pod's uid in ``uncountedTerminatedPods`` (job_controller.go
    ``flushUncountedAndRemoveFinalizers``). Read as "no pod was ever created", it would be
    condemned PendingTimeout while Kubernetes retries it."""
    with KubeStandIn(time_scale=0.2, pod_retry_backoff_seconds=10, aci=AciSettings(start_seconds=2.0)) as slow:
        app = App(slow)
        name = app.submit("gap-1", command=["sh", "-c", "echo first; sleep 5; exit 1"], retries=1)
        wait_for(lambda: running(slow, name), what="the pod to run")
        slow.pause_job_controller()  # the pod fails and is deleted before the controller counts it
        [pod] = pods_of(slow, {name})
        wait_for(lambda: pods_of(slow, {name})[0]["status"]["phase"] == "Failed", what="the pod to fail")
        app.cluster.delete_pod(pod["metadata"]["name"])  # `kubectl delete pod` (or PodGC): held by the finalizer
        slow.fail_job_status_updates(10_000)  # the update moving the pod to `failed` fails, retried
        slow.pause_job_controller(False)

        def in_the_gap() -> dict[str, Any] | None:
            job = slow.job(NS, name) or {}
            gone = not pods_of(slow, {name})
            return job if gone and job.get("status", {}).get("uncountedTerminatedPods", {}).get("failed") else None

        wait_for(in_the_gap, what="the pod gone and still uncounted (before the 10 s retry back-off)")
        slow.pause_job_controller()  # keep the gap while the app looks
        try:
            job = slow.job(NS, name)
            assert job is not None
            assert not pods_of(slow, {name})
            assert job["status"]["uncountedTerminatedPods"] == {"failed": [pod["metadata"]["uid"]]}
            assert not {"active", "failed", "succeeded"} & set(job["status"]), "no counter shows the pod"
            assert job["status"]["terminating"] == 0
            assert not job["status"].get("conditions")
            sink = Sink()
            wait_for(lambda: app.reconcile(sink) and _older_than(job, 2), what="the Job to be past the 1 s timeout")
            assert sink.events == [], "an uncounted pod existed: not PendingTimeout"
            assert ANN_VERDICT not in (slow.job(NS, name) or {})["metadata"].get("annotations", {})
        finally:
            slow.pause_job_controller(False)
            slow.fail_job_status_updates(0)
        wait_for(lambda: (slow.job(NS, name) or {}).get("status", {}).get("failed") == 1, what="the count")
        wait_for(lambda: pods_of(slow, {name}), what="the retry Kubernetes makes (backoffLimit 1)")
        app.reconcile(sink)
        assert sink.events == []


def _older_than(job: dict[str, Any], seconds: float) -> bool:
    created = datetime.fromisoformat(job["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    return (datetime.now(UTC) - created).total_seconds() > seconds


def test_jobs_evicted_by_an_outage_are_node_down_even_when_reported_after_it(kube: KubeStandIn) -> None:
    """No pass ran while the evicted pods were stranded (a follow-up chain's pass every few
    seconds, or the timer's every 30, can fall after virtual-kubelet is back and has removed
    them): the reason is still VirtualNodeDown, as when reported during the outage."""
    app = App(kube)
    names = {app.submit(f"late-{i}", command=["sh", "-c", f"echo job {i}; sleep 100000"]) for i in range(5)}
    wait_for(lambda: all(running(kube, n) for n in names), what="5 Jobs to run")
    kube.virtual_node_down()
    wait_for(lambda: all("FailureTarget" in conditions(kube, n) for n in names), what="the evictions' FailureTarget")
    kube.virtual_node_up()
    wait_for(lambda: all("Failed" in conditions(kube, n) for n in names), what="virtual-kubelet to remove the pods")
    assert not pods_of(kube, names)
    sink = Sink()
    app.reconcile(sink)
    app.reconcile(sink)
    assert sorted(d["jobName"] for d in sink.events) == sorted(names), "one event per request"
    assert {d["reason"] for d in sink.events} == {"VirtualNodeDown"}
    assert all("BackoffLimitExceeded" in d["message"] for d in sink.events)
