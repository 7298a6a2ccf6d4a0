"""A queued request becomes exactly one Job on the virtual node; bad input becomes one event.

Everything here goes over real sockets: Azurite for the queues, the HTTPS Kubernetes
stand-in for the cluster, the app run by the local host on the real worker runtime.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from shared.outcomes.events import deadlettered_id
from tests.conftest import job_name_for, wait_for
from tests.integration.conftest import Queues
from tests.unit.intake.test_request import MALFORMED

pytestmark = pytest.mark.integration

NS = "vnode-batch"
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"


def condition(job: dict[str, Any]) -> str | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return str(c["type"])
    return None


def test_valid_request_runs_once_on_the_virtual_node(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    queues.submit({"id": "hello-1", "image": IMAGE, "command": ["sh", "-c", "echo hi"], "correlationId": "c-1"})
    # The reconcile timer is parked (1 January only) so the test can look at the pods
    # before the reconciler reports and cleans up; then it fires the timer itself.
    with make_runner(VNB_RECONCILE_SCHEDULE="0 0 0 1 1 *") as runner:
        runner.run_until_idle()
        jobs = kube.jobs(NS)
        assert [j["metadata"]["name"] for j in jobs] == [job_name_for("hello-1")]
        done = wait_for(lambda: condition(kube.job(NS, job_name_for("hello-1")) or {}), what="job to finish")
        assert done == "Complete"
        pods = [p for p in kube.pods(NS) if p["metadata"]["labels"].get("job-name") == job_name_for("hello-1")]
        assert pods
        assert {p["spec"]["nodeName"] for p in pods} == {"virtual-node-aci-linux"}
        assert runner.fire_timer("reconcile") == "succeeded"
    events = queues.drain_events()
    assert [(e["type"], e["data"]["requestKey"], e["data"]["correlationId"]) for e in events] == [
        ("io.vnodebatch.job.succeeded", "hello-1", "c-1")
    ]
    assert queues.count(queues.requests) == 0
    assert queues.count(queues.poison) == 0


def test_same_message_delivered_twice_creates_one_job(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    body = {"id": "dup-1", "image": IMAGE, "command": ["sh", "-c", "echo once"]}
    queues.submit(body)
    queues.submit(body)  # a producer retry: same id, same content
    with make_runner() as runner:
        runner.run_until_idle()
    assert [j["metadata"]["name"] for j in kube.jobs(NS)] == [job_name_for("dup-1")]
    # A duplicate is not an outcome of its own: no rejection, and at most the Job's own completion.
    kinds = [e["type"] for e in queues.drain_events()]
    assert "io.vnodebatch.request.rejected" not in kinds
    assert kinds.count("io.vnodebatch.job.succeeded") <= 1
    creates = [r for r in kube.request_log if r[0] == "POST" and r[1].endswith("/jobs")]
    # The second delivery met 409 AlreadyExists, or found the request already submitted in the
    # ledger and did not try: either way one Job.
    assert len(creates) in (1, 2)


def test_redelivered_message_without_id_finds_its_own_job(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    # No "id": the key is the queue message id. Redelivery = the same message again, so the
    # host delivers the very same message (id, body) twice, dequeue count 1 then 2.
    message_id = queues.submit({"image": IMAGE})
    host = make_runner()
    for dequeue in (1, 2):
        outcome = host.deliver("dispatch", json.dumps({"image": IMAGE}), message_id=message_id, dequeue_count=dequeue)
        assert outcome.ok, outcome.error
    assert queues.drain_events() == []
    assert [j["metadata"]["name"] for j in kube.jobs(NS)] == [job_name_for(message_id)]


def test_reused_id_with_different_content_is_rejected(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    queues.submit({"id": "order-7", "image": IMAGE, "command": ["sh", "-c", "echo a"]})
    with make_runner() as runner:
        runner.run_until_idle()
        queues.submit({"id": "order-7", "image": IMAGE, "command": ["sh", "-c", "echo b"], "correlationId": "c-7"})
        runner.run_until_idle()
    assert len(kube.jobs(NS)) == 1
    events = [e for e in queues.drain_events() if e["type"] != "io.vnodebatch.job.succeeded"]
    assert len(events) == 1  # the first request's own completion aside
    event = events[0]
    assert event["type"] == "io.vnodebatch.request.rejected"
    assert event["data"]["reason"] == "IdReused"
    assert event["data"]["errors"][0]["field"] == "id"
    assert "already used for a different request" in event["data"]["errors"][0]["message"]
    assert event["data"]["correlationId"] == "c-7"
    assert json.loads(event["data"]["body"])["command"][2] == "echo b"


def test_every_malformed_message_becomes_one_rejection_event(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    cases = {case: body for case, body, _, _ in MALFORMED}
    sent: dict[str, str] = {}
    for case, body in cases.items():
        if body == b"":
            continue  # the queue service refuses empty messages; nothing to dispatch
        if case == "not utf-8":
            # A queue message is text: a producer can only send bytes like these base64-encoded,
            # which the decoder unwraps, then reports the non-UTF-8 payload.
            sent[queues.submit(base64.b64encode(body).decode())] = case
            continue
        sent[queues.submit(body.decode())] = case
    with make_runner() as runner:
        runner.run_until_idle(timeout=60)
    events = queues.drain_events()
    by_message = {e["data"]["messageId"]: e for e in events}
    assert len(events) == len(sent), "one event per message, no more, no less"
    assert set(by_message) == set(sent)
    for message_id, case in sent.items():
        event = by_message[message_id]
        assert event["type"] == "io.vnodebatch.request.rejected", case
        assert event["data"]["errors"], case
        assert all(e["field"] and e["message"] for e in event["data"]["errors"]), case
        assert "body" in event["data"] or "bodyBase64" in event["data"], case
    assert kube.jobs(NS) == []
    assert queues.count(queues.requests) == 0
    assert queues.count(queues.poison) == 0


def test_base64_producer_is_understood(make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn) -> None:
    body = json.dumps({"id": "b64-1", "image": IMAGE})
    queues.submit(base64.b64encode(body.encode()).decode())
    with make_runner() as runner:
        runner.run_until_idle()
    assert [j["metadata"]["name"] for j in kube.jobs(NS)] == [job_name_for("b64-1")]


def test_job_creation_that_keeps_failing_is_retried_poisoned_and_deadlettered(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    kube.fail_requests(method="POST", path_regex=r"/jobs$", status=500)
    queues.submit({"id": "doomed-1", "image": IMAGE, "correlationId": "c-doom"})
    with make_runner() as runner:
        wait_for(lambda: queues.count(queues.events) > 0, timeout=30, what="the dead-letter event")
        runner.run_until_idle()
    creates = [r for r in kube.request_log if r[0] == "POST" and r[1].endswith("/jobs")]
    assert len(creates) == 3  # maxDequeueCount deliveries, each one create attempt
    events = queues.drain_events()
    assert len(events) == 1
    event = events[0]
    assert event["type"] == "io.vnodebatch.request.deadlettered"
    assert event["data"]["requestKey"] == "doomed-1"
    assert event["data"]["correlationId"] == "c-doom"
    # The poison copy is a new message: the event is keyed by the request, claims no dequeue count.
    assert event["id"] == deadlettered_id(key="doomed-1", body=b"")
    assert "dequeueCount" not in event["data"]
    assert event["data"]["poisonedAt"] is not None
    assert json.loads(event["data"]["body"])["id"] == "doomed-1"
    assert kube.jobs(NS) == []
    assert queues.count(queues.poison) == 0


def test_transient_failure_then_success_creates_the_job_once(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    kube.fail_requests(method="POST", path_regex=r"/jobs$", status=503, count=1)
    queues.submit({"id": "flaky-1", "image": IMAGE})
    with make_runner() as runner:
        wait_for(lambda: kube.jobs(NS), what="the job after a retry")
        runner.run_until_idle()
    assert [j["metadata"]["name"] for j in kube.jobs(NS)] == [job_name_for("flaky-1")]
    kinds = [e["type"] for e in queues.drain_events()]
    assert not [k for k in kinds if k.startswith("io.vnodebatch.request.")]
