"""Queue trigger and processor rules of the local host, over a real Azurite (docs/local-host.md)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from devtools.host import LocalHost
from devtools.host.queues import Backoff, poison_queue_name
from tests.conftest import wait_for
from tests.host.conftest import probe, raw_messages

Q = Callable[[str], QueueClient]


def test_success_passes_host_metadata_writes_outputs_then_deletes(
        make_host: Callable[..., LocalHost], queue: Q, names: dict[str, str], probe_file: Path) -> None:
    work = names["WORK_QUEUE"]
    with make_host() as host:
        sent = queue(work).send_message(json.dumps({"id": "a", "outputs": ["a:0", '{"k": 1}']}))
        host.run_until_idle(timeout=20)
    [call] = probe(probe_file, "work")
    # The trigger metadata the host passes reaches the function as QueueMessage fields.
    assert (call["message_id"], call["dequeue_count"]) == (sent.id, 1)
    assert call["inserted"]
    assert call["pop_receipt"]
    # list[str] elements are written verbatim, one message each (no JSON re-serialising).
    assert sorted(raw_messages(queue(f"{work}-out"))) == ["a:0", '{"k": 1}']
    assert queue(work).get_queue_properties().approximate_message_count == 0
    assert host.stats["work"].successes == 1


def test_failure_is_released_retried_and_moved_to_poison_as_a_new_message(
        make_host: Callable[..., LocalHost], queue: Q, names: dict[str, str], probe_file: Path) -> None:
    work = names["WORK_QUEUE"]
    with make_host() as host:  # maxDequeueCount 3
        sent = queue(work).send_message(json.dumps({"id": "bad", "outputs": ["never"], "fail": True}))
        wait_for(lambda: probe(probe_file, "deadletter"), what="the dead-letter function")
        host.run_until_idle(timeout=20)
    assert [c["dequeue_count"] for c in probe(probe_file, "work")] == [1, 2, 3]
    assert raw_messages(queue(f"{work}-out")) == []  # outputs are written only on success
    [dead] = probe(probe_file, "deadletter")
    # The poison copy is a new message: new id, its dequeue count starts again.
    assert dead["message_id"] != sent.id
    assert dead["dequeue_count"] == 1
    assert json.loads(dead["body"])["id"] == "bad"
    assert host.stats["work"].poisoned == 1


def test_a_stop_lets_a_running_invocation_finish_and_settle_its_message(
        make_host: Callable[..., LocalHost], queue: Q, names: dict[str, str], probe_file: Path) -> None:
    work = names["WORK_QUEUE"]
    host = make_host().start()
    queue(work).send_message(json.dumps({"id": "slow", "outputs": ["done"], "sleep": 1}))
    wait_for(lambda: probe(probe_file, "work"), what="the invocation to start")
    host.stop(timeout=30)  # while it runs and holds the message's lease
    assert [c["id"] for c in probe(probe_file, "work-done")] == ["slow"]
    assert raw_messages(queue(f"{work}-out")) == ["done"]
    # Deleted, not left invisible under a lease until it lapses (then run a second time).
    assert queue(work).get_queue_properties().approximate_message_count == 0


def _dequeue_times(client: QueueClient, times: int) -> None:
    for _ in range(times):
        [m] = client.receive_messages(max_messages=1, visibility_timeout=30)
        client.update_message(m, visibility_timeout=0)


def test_message_already_past_max_dequeue_count_is_poisoned_without_invoking(
        make_host: Callable[..., LocalHost], queue: Q, names: dict[str, str], probe_file: Path) -> None:
    work = queue(names["WORK_QUEUE"])
    work.create_queue()
    work.send_message(json.dumps({"id": "crashed"}))
    _dequeue_times(work, 3)  # three deliveries whose hosts crashed: next is the 4th
    with make_host() as host:
        wait_for(lambda: probe(probe_file, "deadletter"), what="the poison copy to be handled")
        host.run_until_idle(timeout=20)
    assert probe(probe_file, "work") == []


def test_a_poison_queue_has_no_poison_queue_failures_are_not_released(
        make_host: Callable[..., LocalHost], queue: Q, names: dict[str, str], probe_file: Path) -> None:
    poison = queue(f"{names['WORK_QUEUE']}-poison")
    poison.create_queue()
    poison.send_message("fail please")
    with make_host() as host:  # visibilityTimeout 0: a released message would be back at once
        wait_for(lambda: probe(probe_file, "deadletter"), what="the dead-letter function")
        wait_for(lambda: host.stats["deadletter"].failures == 1, what="the failure")
        time.sleep(1.5)  # three polling intervals: a released message would have been seen again
        assert len(probe(probe_file, "deadletter")) == 1
        assert raw_messages(poison) == []  # still leased (10 minutes), not released
    assert poison.get_queue_properties().approximate_message_count == 1
    assert poison_queue_name(poison.queue_name) is None
    try:
        queue(f"{poison.queue_name}-poison").get_queue_properties()
        raise AssertionError("a -poison-poison queue was created")
    except ResourceNotFoundError:
        pass


def test_a_poison_queue_message_past_max_is_skipped_and_not_deleted(
        make_host: Callable[..., LocalHost], queue: Q, names: dict[str, str], probe_file: Path) -> None:
    poison = queue(f"{names['WORK_QUEUE']}-poison")
    poison.create_queue()
    poison.send_message("old")
    _dequeue_times(poison, 3)
    with make_host(message_lease_seconds=2) as host:
        wait_for(lambda: poison.get_queue_properties().approximate_message_count == 1 and not raw_messages(poison),
                 what="the message to be received")
        time.sleep(1.0)
        assert host.stats["deadletter"].invocations == 0
    assert probe(probe_file, "deadletter") == []
    assert poison.get_queue_properties().approximate_message_count == 1  # stays until its TTL


def test_names_that_cannot_have_a_poison_queue() -> None:
    assert poison_queue_name("requests") == "requests-poison"
    assert poison_queue_name("requests-poison") is None
    assert poison_queue_name("q" * 57) is None  # q*57 + "-poison" is 64 characters
    assert poison_queue_name("q" * 56) == "q" * 56 + "-poison"


def test_empty_polls_back_off_exponentially_randomised_up_to_the_maximum() -> None:
    backoff = Backoff(0.1, 2.0, random.Random(7))
    delays = [backoff.next_delay(succeeded=False) for _ in range(10)]
    assert delays[0] == 0.1  # the first empty poll waits the minimum
    for n, delay in enumerate(delays[1:5], start=1):  # minimum + (0.8..1.2) * 2**(n-1) * minimum
        assert 0.1 + 0.8 * 2 ** (n - 1) * 0.1 <= delay <= 0.1 + 1.2 * 2 ** (n - 1) * 0.1
    assert delays[-1] == 2.0  # capped at maxPollingInterval, and stays there
    assert delays[1:5] != [0.1 + 2 ** (n - 1) * 0.1 for n in range(1, 5)]  # randomised
    assert backoff.next_delay(succeeded=True) == 0.1  # a message found: back to the minimum


def test_a_write_by_the_host_wakes_the_listener_of_that_queue(
        make_host: Callable[..., LocalHost], names: dict[str, str], probe_file: Path) -> None:
    host = make_host(queues={"maxPollingInterval": "00:01:00"})
    with host:
        sink = next(listener for listener in host._listeners if listener.spec.name == "sink")
        wait_for(lambda: sink.delays and sink.delays[-1] >= 6.0, what="the sink's back-off to grow", timeout=30)
        # echo writes to the sink's queue through the host: the sink polls at once instead of
        # sleeping out its back-off (several seconds by now).
        assert host.deliver("echo", "ping").ok
        wait_for(lambda: probe(probe_file, "sink"), what="the sink to see the message", timeout=5.0)
