"""Issue 20's reports, one test each, over the real services in the in-memory world
(``tests.model.world``): each failed on the main it was filed against."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest

from shared.adapters.kube import AdmissionDenied, KubeTransientError, _error
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound, Outcome
from shared.intake.deferral import wrap
from shared.ledger.records import State
from tests.model.request_life import body
from tests.model.world import T0, World, model_settings
from tests.unit.flows.test_reconcile_events import validate_event


def events_about(world: World, key: str) -> list[dict[str, Any]]:
    return [s.event for s in world.sent if s.event["data"].get("requestKey") == key]


def run_all(world: World) -> None:
    while world.queue:
        world.deliver(world.queue[0])


# --- 1. a rejection after `received` ends the ledger record ---------------------------------


def test_a_request_wider_than_the_whole_budget_posted_through_the_api_ends_rejected() -> None:
    world = World()
    answer = world.api.submit(body("wide", "big"), content_type="application/json")
    assert answer.status == 202
    assert world.ledger.get("wide").state == State.RECEIVED  # type: ignore[union-attr]
    run_all(world)
    record = world.ledger.get("wide")
    assert record is not None
    assert record.state == State.REJECTED  # was: still "received", so `submit --wait` never ended
    assert world.api.status("wide").body["terminal"] is True  # type: ignore[index]
    [event] = events_about(world, "wide")
    assert event["type"] == "io.vnodebatch.request.rejected"
    assert event["data"]["reason"] == "ExceedsCapacity"
    assert record.event_id == event["id"]
    # a later DELETE is a conflict, never a second terminal event
    assert world.api.cancel("wide").status == 409
    assert len(events_about(world, "wide")) == 1


@pytest.mark.parametrize(("refusal", "reason"), [("422", "KubernetesRejected"), ("webhook", "AdmissionDenied")])
def test_a_create_the_api_server_refuses_ends_the_record_rejected(refusal: str, reason: str) -> None:
    world = World()
    assert world.api.submit(body("refused"), content_type="application/json").status == 202
    world.cluster.refuse = refusal
    run_all(world)
    record = world.ledger.get("refused")
    assert record is not None
    assert record.state == State.REJECTED  # was: "received" forever (the create-refused path wrote nothing)
    [event] = events_about(world, "refused")
    assert (event["data"]["reason"], record.event_id) == (reason, event["id"])
    assert world.api.cancel("refused").status == 409
    assert len(events_about(world, "refused")) == 1


# --- 2. cancel racing a report: one outcome --------------------------------------------------


@pytest.mark.parametrize("how", ["succeed", "fail"])
def test_a_delete_landing_while_the_reconciler_reads_logs_gives_one_outcome(how: str) -> None:
    world = World()
    world.produce(body("race").decode())
    run_all(world)
    [name] = world.cluster.live()
    world.cluster.progress(name, how)
    answers: list[int] = []
    world.cluster.on_log = lambda: answers.append(world.api.cancel("race").status)  # the slow log read
    world.reconcile()
    assert answers == [200]
    [event] = events_about(world, "race")  # was: job.cancelled and job.succeeded/failed
    assert event["type"] == "io.vnodebatch.job.cancelled"
    record = world.ledger.get("race")
    assert record is not None
    assert (record.state, record.event_id) == (State.CANCELLED, event["id"])
    assert world.cluster.jobs == {}


def test_a_delete_after_the_report_claimed_is_a_conflict() -> None:
    world = World()
    world.produce(body("late").decode())
    run_all(world)
    [name] = world.cluster.live()
    world.cluster.progress(name, "succeed")
    world.reconcile()
    assert world.api.cancel("late").status == 409
    assert [e["type"] for e in events_about(world, "late")] == ["io.vnodebatch.job.succeeded"]


# --- 3. a request waiting for capacity is not taken for a forgery ----------------------------


def test_a_request_waiting_for_capacity_longer_than_the_bootstrap_wait_keeps_waiting() -> None:
    world = World(settings=model_settings(VNB_BOOTSTRAP_MAX_WAIT_SECONDS="3600", VNB_CAPACITY_MAX_WAIT_SECONDS="86400"))
    world.admission.open = False
    world.produce(body("patient").decode())
    for minutes in range(0, 95, 5):  # re-enqueued again and again, 65 minutes and more
        world.clock = T0 + timedelta(minutes=minutes)
        for message in list(world.queue):  # what is visible now; a deferral comes back next round
            world.deliver(message)
    record = world.ledger.get("patient")
    assert record is not None
    assert record.state == State.WAITING_FOR_CAPACITY  # was: rejected as forged after ~65 minutes
    assert events_about(world, "patient") == []


def test_a_forged_envelope_counter_is_rejected() -> None:
    world = World()
    text = wrap(
        json.loads(body("forged")),
        key="forged",
        message_id="m-0",
        first_seen=T0,
        count=1,
        reason="x",
        capacity_attempts=-1_000_000,
    )
    message = world.produce(text)
    run_all(world)
    [sent] = world.sent
    event = sent.event
    assert "vnodeBatchDeferred.capacityAttempts" in [e["field"] for e in event["data"]["errors"]]
    # nothing in a forged envelope is trusted: the message is keyed by its own id (issue 19)
    assert (event["data"]["requestKey"], event["data"]["claimedKey"]) == (message.id, "forged")
    assert world.ledger.get("forged") is None
    assert world.cluster.jobs == {}


# --- 4. invalid input is a rejection, never a poison -----------------------------------------


def test_an_id_that_is_no_key_is_rejected_under_the_message_id_with_the_raw_value_escaped() -> None:
    world = World()
    raw = json.dumps({"id": "a/b#c?" + "x" * 600, "image": "mcr.microsoft.com/x:1"})
    message = world.produce(raw)
    assert world.deliver(message) == "done"  # was: a Table 400 taken for transient, then the poison queue
    [sent] = world.sent
    event = validate_event(json.dumps(sent.event))
    assert event["data"]["requestKey"] == message.id
    assert event["data"]["rawId"].startswith('"a/b#c?xxx')
    assert len(event["data"]["rawId"]) <= 256
    record = world.ledger.get(message.id)
    assert record is not None
    assert (record.state, record.event_id) == (State.REJECTED, event["id"])


def test_ids_utf8_cannot_encode_are_rejected_not_crashed() -> None:
    world = World()
    message = world.produce(json.dumps({"id": "\ud800", "correlationId": "x\udfff", "image": "mcr.microsoft.com/x:1"}))
    assert world.deliver(message) == "done"  # was: UnicodeEncodeError in the event writer
    [sent] = world.sent
    event = validate_event(json.dumps(sent.event, ensure_ascii=False))
    assert event["data"]["rawId"] == '"\\ud800"'
    assert event["data"]["correlationId"] is None


def test_many_long_invalid_label_keys_still_make_a_sendable_rejection() -> None:
    world = World()
    labels = {("A" * 3000 + str(i) + "/x"): "v" for i in range(20)}  # a 60 KB body
    message = world.produce(json.dumps({"id": "labels", "image": "mcr.microsoft.com/x:1", "labels": labels}))
    assert world.deliver(message) == "done"
    [sent] = world.sent
    text = json.dumps(sent.event, separators=(",", ":"), ensure_ascii=False)
    assert len(text.encode()) <= 64 * 1024  # was: 81 KB, refused by the queue
    validate_event(text)
    assert 1 <= len(sent.event["data"]["errors"]) <= 20


def test_a_base64_body_with_a_byte_order_mark_is_read() -> None:
    world = World()
    text = "\ufeff" + json.dumps({"id": "bom", "image": "mcr.microsoft.com/x:1"})
    world.produce(base64.b64encode(text.encode()).decode())
    run_all(world)
    assert world.ledger.get("bom").state == State.SUBMITTED  # type: ignore[union-attr]


# --- 5. an admission webhook's 403 is a rejection; a missing role's is not -------------------

WEBHOOK_403 = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "code": 403,
    "reason": "Forbidden",
    "message": 'jobs.batch "vnb-x" is forbidden: admission webhook "validation.gatekeeper.sh" denied the request: '
    "[azurepolicy-k8sazurev2containerallowedimages-0c1d] Container image evil.io/x for container main has "
    "not been allowed.",
    "details": {"name": "vnb-x", "group": "batch", "kind": "jobs"},
}
RBAC_403 = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "code": 403,
    "reason": "Forbidden",
    "message": 'jobs.batch is forbidden: User "app" cannot create resource "jobs" in API group "batch" in the '
    'namespace "vnode-batch"',
    "details": {"group": "batch", "kind": "jobs"},
}


def test_the_apiserver_wording_tells_a_webhook_denial_from_a_missing_role() -> None:
    denied = _error("POST", "/apis/batch/v1/namespaces/vnode-batch/jobs", 403, json.dumps(WEBHOOK_403).encode())
    assert isinstance(denied, AdmissionDenied)
    assert "Container image evil.io/x" in str(denied)
    missing = _error("POST", "/apis/batch/v1/namespaces/vnode-batch/jobs", 403, json.dumps(RBAC_403).encode())
    assert isinstance(missing, KubeTransientError)
    assert "Azure Kubernetes Service RBAC Writer" in str(missing)


def test_a_webhook_denial_is_rejected_at_once_with_its_message() -> None:
    world = World()
    world.cluster.refuse = "webhook"
    message = world.produce(body("policy").decode())
    assert world.deliver(message) == "done"  # was: retried as a missing role until the poison queue
    [event] = events_about(world, "policy")
    assert event["data"]["reason"] == "AdmissionDenied"
    assert "denied the request" in event["data"]["errors"][0]["message"]


def test_a_missing_role_stays_transient() -> None:
    world = World()
    world.cluster.refuse = "rbac"
    message = world.produce(body("role").decode())
    assert world.deliver(message) == "retry"
    assert world.sent == []


# --- 6. query parameters never 500 ------------------------------------------------------------


@pytest.mark.parametrize(
    "since", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z", "2026-13-01T00:00:00Z"]
)
def test_since_at_the_extremes_of_rfc3339_is_never_a_500(since: str) -> None:
    world = World()
    world.produce(body("old").decode())
    run_all(world)
    answer = world.api.handle(lambda: world.api.list({"since": since}))
    assert answer.status in (200, 400), answer.body
    if since.startswith("0001-01-01T00:00:00+"):
        assert [r["id"] for r in answer.body["items"]] == ["old"]  # type: ignore[index]
    if since.startswith("9999"):
        assert answer.body["items"] == []  # type: ignore[index]


def test_a_dispatch_of_any_deferral_counter_never_raises() -> None:
    settings = model_settings()
    for attempts in (-1, 10**30, "1e400"):
        text = json.dumps(
            {
                "vnodeBatchDeferred": {
                    "key": "k",
                    "messageId": "m",
                    "firstSeen": T0.isoformat(),
                    "count": 1,
                    "capacityAttempts": attempts,
                },
                "request": {"image": "mcr.microsoft.com/x:1"},
            }
        )
        result = dispatch(
            Inbound("m-9", text.encode(), 1, T0),
            settings=settings,
            gate=World().gate(),
            requeue=lambda t, d: None,
            now=lambda: T0,
        )
        assert result.outcome is Outcome.REJECTED
