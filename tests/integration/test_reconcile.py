"""Completion events end to end: requests on Azurite → dispatch → Jobs on the stand-in's virtual
node → the real reconcile timer → exactly one terminal event per request, then no Job left.

The local runner drives the app's own indexed functions (dispatch every 200 ms, reconcile on
its NCRONTAB every second); everything crosses real sockets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from devtools.host import LocalHost, exported_settings
from devtools.standins.kube.apiserver import KubeStandIn
from shared.adapters.kube import Cluster, from_kubeconfig_dict
from shared.adapters.queues import Queues as AppQueues
from shared.adapters.tables import Tables
from shared.config.settings import Settings
from shared.flows.reconcile import KubeJobs, reconcile
from shared.ledger.records import State
from shared.ledger.store import Ledger
from tests.conftest import job_name_for, wait_for
from tests.integration.conftest import Queues
from tests.unit.flows.test_reconcile_events import validate_event

pytestmark = pytest.mark.integration

NS = "vnode-batch"
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
TERMINAL = ("io.vnodebatch.job.succeeded", "io.vnodebatch.job.failed")


def running(kube: KubeStandIn, key: str) -> bool:
    name = job_name_for(key)
    return any(
        p["status"].get("phase") == "Running"
        for p in kube.pods(NS)
        if p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == name
    )


def complete(job: dict[str, Any]) -> bool:
    return any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"].get("conditions") or [])


class EventLog:
    """Everything that reached the events queue, validated against the schemas on arrival."""

    def __init__(self, queues: Queues) -> None:
        self.queues = queues
        self.events: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        for m in self.queues.events.receive_messages(max_messages=32, visibility_timeout=30):
            self.events.append(validate_event(str(m.content)))
            self.queues.events.delete_message(m)
        return self.events

    def terminal(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for e in self.events:
            if e["type"] in TERMINAL:
                out.setdefault(e["data"]["requestKey"], []).append(e)
        return out


REQUESTS: dict[str, dict[str, Any]] = {
    "ok-1": {"command": ["sh", "-c", "echo hello from ok-1; exit 0"], "correlationId": "corr-ok"},
    "exit-3": {"command": ["sh", "-c", "echo about to fail; echo boom; exit 3"]},
    "deadline-1": {"command": ["sh", "-c", "echo started; sleep 30"], "timeoutSeconds": 1},
    "provider-1": {"image": "mcr.microsoft.com/provider-failed/app:1"},
    "stuck-1": {"image": "mcr.microsoft.com/no-capacity/app:1", "command": ["sh", "-c", "echo never"]},
    "pull-1": {"image": "mcr.microsoft.com/does-not-exist/app:1"},
    "array-1": {"command": ["sh", "-c", "echo index $JOB_COMPLETION_INDEX; fail-on-index 3"], "completions": 5},
    "lost-1": {"command": ["sh", "-c", "echo working; sleep 60"]},
}
EXPECTED = {
    "ok-1": ("succeeded", "Completed"),
    "exit-3": ("failed", "BackoffLimitExceeded"),
    "deadline-1": ("failed", "DeadlineExceeded"),
    # ACI has no room for this image, ever: retried VNB_CAPACITY_MAX_ATTEMPTS times, then failed.
    "provider-1": ("failed", "CapacityExhausted"),
    "stuck-1": ("failed", "PendingTimeout"),
    "pull-1": ("failed", "ImagePullBackOff"),
    "array-1": ("failed", "FailedIndexes"),
    "lost-1": ("failed", "Lost"),
}


def test_every_request_ends_in_exactly_one_valid_terminal_event_and_no_job_is_left(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn, app_env: dict[str, str]
) -> None:
    for key, extra in REQUESTS.items():
        queues.submit({"id": key, "image": IMAGE, **extra})
    log = EventLog(queues)
    with make_runner(
        VNB_PENDING_TIMEOUT_SECONDS="3",
        VNB_KEEP_FINISHED_SECONDS="0",
        VNB_CAPACITY_MAX_ATTEMPTS="2",
        VNB_CAPACITY_DEFER_SECONDS="1",
    ):
        wait_for(lambda: running(kube, "lost-1"), what="lost-1 to run")
        kube.delete_job_behind_the_apps_back(NS, job_name_for("lost-1"))
        wait_for(lambda: len(log.poll()) >= len(REQUESTS), what="a terminal event for every request")
        wait_for(lambda: not kube.jobs(NS), what="every reported Job to be deleted")
        time.sleep(1.5)  # more reconcile runs: nothing may be reported twice
        log.poll()
    by_key = log.terminal()
    assert {k: [(e["data"]["outcome"], e["data"]["reason"]) for e in v] for k, v in by_key.items()} == {
        k: [v] for k, v in EXPECTED.items()
    }
    assert len(log.events) == len(REQUESTS), "no other events (rejections, dead letters, repeats)"
    data = {k: v[0]["data"] for k, v in by_key.items()}

    ok = data["ok-1"]
    assert (ok["correlationId"], ok["jobName"]) == ("corr-ok", job_name_for("ok-1"))
    # The virtual node reports no exit code for a container that completed (azure-aci issue #417).
    assert (ok["exitCode"], ok["exitCodeUnavailable"]["reason"]) == (None, "NotReportedByProvider")
    assert ok["resources"] == {
        "cpu": {"requested": None, "applied": "1"},
        "memory": {"requested": None, "applied": "1500M"},
    }
    assert ok["providerFailure"] is None
    assert ok["logTail"][0]["text"] == "hello from ok-1\n"
    assert ok["durationSeconds"] is not None
    assert ok["queueToStartSeconds"] is not None
    assert ok["enqueuedAt"] <= ok["createdAt"] <= ok["startedAt"] <= ok["finishedAt"]

    # The real provider loses the 3 (ACI state Terminated, azure-aci#417): null with the reason, never 0.
    exit3 = data["exit-3"]
    assert (exit3["exitCode"], exit3["exitCodeUnavailable"]["reason"]) == (None, "NotReportedByProvider")
    assert "the virtual node did not report its exit code" in exit3["message"]
    assert exit3["logTail"][0]["text"] == "about to fail\nboom\n"  # ACI's line timestamps removed
    assert "ServiceUnavailable" in data["provider-1"]["message"]
    assert "2 of 2 attempts" in data["provider-1"]["message"]  # retried, then CapacityExhausted
    failure = data["provider-1"]["providerFailure"]
    assert (failure["class"], failure["code"], failure["status"]) == ("quotaOrCapacity", "ServiceUnavailable", 409)
    assert "not available in the location" in failure["message"]
    assert data["provider-1"]["exitCodeUnavailable"]["reason"] == "NoContainerExited"
    # The ledger: given back once (waiting for capacity again, not failed), then failed for good.
    record = Ledger(Tables(Settings.from_env(app_env))).get("provider-1")
    assert record is not None
    assert (record.state, record.reason) == (State.FAILED, "CapacityExhausted")
    assert State.WAITING_FOR_CAPACITY.value in record.times
    assert record.attempts >= 1
    assert "insufficient capacity" in data["stuck-1"]["message"]
    assert "VNB_PENDING_TIMEOUT_SECONDS=3" in data["stuck-1"]["message"]
    assert "does-not-exist" in data["pull-1"]["message"]
    array = data["array-1"]
    assert array["indexes"] == {"completions": 5, "succeeded": "0-2,4", "failed": "3"}
    assert (array["exitCode"], array["exitCodeUnavailable"]["reason"]) == (None, "NotReportedByProvider")
    assert array["logTail"][0]["index"] == 3
    assert array["logTail"][0]["text"] == "index 3\nfailing on index 3\n"
    assert data["lost-1"]["logTail"][0]["text"] == "working\n"  # read before the pods went

    assert kube.jobs(NS) == []
    wait_for(lambda: not kube.pods(NS), what="the garbage collector to remove every pod", timeout=10)


def test_a_pass_killed_between_send_and_mark_repeats_the_same_event(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    queues.submit({"id": "crash-1", "image": IMAGE, "command": ["sh", "-c", "echo once"]})
    # The PATCH that marks the Job reported fails once, after the event was sent.
    kube.fail_requests(method="PATCH", path_regex=job_name_for("crash-1"), status=500, count=1)
    log = EventLog(queues)
    with make_runner(VNB_KEEP_FINISHED_SECONDS="0"):
        wait_for(lambda: len(log.poll()) >= 2, what="the event, and its repeat")
        wait_for(lambda: not kube.jobs(NS), what="the Job to be deleted")
        time.sleep(1.2)
        log.poll()
    first, second = log.events
    assert first["id"] == second["id"]
    assert first == second  # the same event, not a second outcome
    patches = [r for r in kube.request_log if r[0] == "PATCH"]
    assert len(patches) == 2


def test_a_sender_that_dies_after_sending_loses_nothing(
    app_env: dict[str, str], queues: Queues, kube: KubeStandIn
) -> None:
    """Dependency injection instead of a failing API: the service's queue sender sends the
    event for real (Azurite) and then raises, as a process killed at that instant would."""
    with exported_settings(app_env):
        settings = Settings.from_env({**app_env, "VNB_KEEP_FINISHED_SECONDS": "0"})
    cluster = Cluster(from_kubeconfig_dict(kube.kubeconfig_dict(), context=None, timeout=5), NS)
    for key in ("die-1", "die-2"):
        cluster.create_job(_manifest(settings, key))
    wait_for(lambda: sum(map(complete, kube.jobs(NS))) == 2, what="both Jobs to complete")
    real = AppQueues(settings)
    sends: list[str] = []

    def dying(text: str) -> str:
        message_id = real.send_event(text)
        sends.append(text)
        if len(sends) == 1:
            raise SystemError("killed right after sending")
        return message_id

    first = reconcile(settings=settings, jobs=KubeJobs(cluster), send_event=dying)
    assert (first.reported, first.errors) == (1, 1)  # the other Job was still reported
    second = reconcile(settings=settings, jobs=KubeJobs(cluster), send_event=real.send_event)
    assert second.reported == 1
    events = EventLog(queues).poll()
    ids = [e["id"] for e in events]
    assert len(events) == 3
    assert len(set(ids)) == 2, "the repeat has the id of the event sent before the crash"
    assert {e["data"]["requestKey"] for e in events} == {"die-1", "die-2"}
    assert kube.jobs(NS) == []


def test_kept_jobs_free_their_pods_and_still_absorb_a_late_redelivery(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    body = {"id": "kept-1", "image": IMAGE, "command": ["sh", "-c", "echo kept"]}
    queues.submit(body)
    log = EventLog(queues)
    with make_runner(VNB_KEEP_FINISHED_SECONDS="3600") as runner:
        wait_for(log.poll, what="the completion event")
        wait_for(lambda: not kube.pods(NS), what="the pods to be deleted at once")
        queues.submit(body)  # a late redelivery of the same request
        runner.run_until_idle()
        time.sleep(1.2)
        log.poll()
    [event] = log.events
    assert event["type"] == "io.vnodebatch.job.succeeded"
    [job] = kube.jobs(NS)
    assert job["metadata"]["labels"]["vnode-batch.io/state"] == "reported"
    assert job["metadata"].get("finalizers") in (None, [])
    assert kube.pods(NS) == []
    creates = [r for r in kube.request_log if r[0] == "POST" and r[1].endswith("/jobs")]
    # The ledger knew the key had finished: the redelivery did not even try to create a Job.
    assert len(creates) == 1


def _manifest(settings: Settings, key: str) -> dict[str, Any]:
    from shared.intake.request import parse_request
    from shared.job.render import JobMeta, build_job

    request = parse_request({"image": IMAGE, "command": ["sh", "-c", f"echo {key}"]}, settings=settings)
    return build_job(request, JobMeta(key=key, message_id=f"m-{key}", enqueued_at=None), settings=settings)
