"""The deadletter function during a ledger outage (issue 20, the 30-minute run's finding): it
never sends an outcome the ledger does not hold while another delivery of the key can still
run; it parks the body in the poison queue instead, and tries again later.

Over the real services in the in-memory world (``tests.model.world``), whose host follows the
WebJobs rules for a poison queue (a failed message is not released; past ``maxDequeueCount``
it is skipped for good).
"""

from __future__ import annotations

import json
from typing import Any

from shared.flows.deadletter import deadletter
from shared.flows.inbound import Inbound
from shared.ledger.records import State
from tests.model.request_life import body
from tests.model.world import MAX_DEQUEUE, Message, World


def events_about(world: World, key: str) -> list[dict[str, Any]]:
    return [s.event for s in world.sent if s.event["data"].get("requestKey") == key]


def poisoned_with_a_duplicate(world: World, key: str) -> tuple[Message, Message]:
    """Two posts of ``key``; a missing role (transient) poisons the first message, the
    duplicate is still on the requests queue."""
    for _ in range(2):
        assert world.api.submit(body(key), content_type="application/json").status == 202
    first, duplicate = world.queue
    world.cluster.refuse = "rbac"
    for _ in range(MAX_DEQUEUE):
        world.deliver(first)
    world.cluster.refuse = None
    [poison] = [m for m in world.queue if m.poison]
    return poison, duplicate


def test_a_poisoned_request_is_parked_not_announced_while_the_ledger_is_down() -> None:
    world = World()
    poison, duplicate = poisoned_with_a_duplicate(world, "k0")
    world.table.fail_next = 100
    assert world.deliver(poison) == "done"
    assert events_about(world, "k0") == []  # was: request.deadlettered, unrecorded
    [parked] = [m for m in world.queue if m.poison]
    assert parked is not poison
    assert parked.body == poison.body
    assert parked.dequeue_count == 0
    world.table.fail_next = 0
    # The duplicate runs first: the request gets its Job, the parked body then loses its claim.
    world.deliver(duplicate)
    world.deliver(parked)
    assert world.queue == []
    [job] = world.cluster.live()
    world.cluster.progress(job, "succeed")
    world.reconcile()
    [event] = events_about(world, "k0")
    assert event["type"] == "io.vnodebatch.job.succeeded"
    assert world.ledger.get("k0").state == State.SUCCEEDED  # type: ignore[union-attr]


def test_a_parked_body_claimed_first_ends_the_request_and_its_duplicate_makes_no_job() -> None:
    world = World()
    poison, duplicate = poisoned_with_a_duplicate(world, "k1")
    world.table.fail_next = 100
    world.deliver(poison)
    world.table.fail_next = 0
    [parked] = [m for m in world.queue if m.poison]
    world.deliver(parked)
    world.deliver(duplicate)
    assert world.cluster.jobs == {}
    [event] = events_about(world, "k1")
    assert event["type"] == "io.vnodebatch.request.deadlettered"
    record = world.ledger.get("k1")
    assert record is not None
    assert (record.state, record.event_id) == (State.DEADLETTERED, event["id"])


def test_when_parking_fails_too_the_host_tries_the_same_message_again() -> None:
    world = World()
    poison, _ = poisoned_with_a_duplicate(world, "k2")
    world.table.fail_next, world.enqueue_fails = 100, 1
    assert world.deliver(poison) == "retry"
    assert poison in world.queue
    assert events_about(world, "k2") == []
    world.table.fail_next = 0
    assert world.deliver(poison) == "done"
    assert [e["type"] for e in events_about(world, "k2")] == ["io.vnodebatch.request.deadlettered"]


def test_a_crash_after_parking_leaves_two_copies_and_one_event_id() -> None:
    world = World()
    poison, duplicate = poisoned_with_a_duplicate(world, "k3")
    world.table.fail_next = 100
    assert world.deliver(poison, crash=True) == "retry"  # parked, then the host never deleted it
    world.table.fail_next = 0
    copies = [m for m in world.queue if m.poison]
    assert len(copies) == 2
    for message in [*copies, duplicate]:
        world.deliver(message)
    sent, record = events_about(world, "k3"), world.ledger.get("k3")
    assert record is not None
    assert len(sent) == 2  # the same event twice: at-least-once, consumers de-duplicate on the id
    assert {e["id"] for e in sent} == {record.event_id}
    assert world.cluster.jobs == {}


def test_a_poisoned_body_reusing_another_requests_id_is_about_the_body_only() -> None:
    world = World()
    assert world.api.submit(body("k4"), content_type="application/json").status == 202
    before = world.ledger.get("k4")
    spoof = Inbound("poison-copy", body("k4", "other"), 1, world.clock)
    event = json.loads(deadletter(spoof, settings=world.settings, now=world.clock, ledger=world.ledger) or "null")
    assert event["data"]["requestKey"] is None  # not an outcome of k4
    assert world.ledger.get("k4") == before
