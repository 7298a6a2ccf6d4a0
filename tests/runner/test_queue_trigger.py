"""Queue-trigger semantics of the local runner, against a real Azurite."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable

from azure.storage.queue import QueueClient

from devtools.runner import LocalRunner, Outcome
from tests.conftest import wait_for
from tests.runner import sample_app
from tests.runner.conftest import raw_messages

PROBE = sample_app.PROBE
NO_TIMER = {"AzureWebJobs.tick.Disabled": "true"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_success_flushes_outputs_then_deletes_the_message(
    make_runner: Callable[..., LocalRunner], queue: Callable[..., QueueClient], names: dict[str, str]
) -> None:
    runner = make_runner(settings=NO_TIMER)
    with runner:
        queue(names["WORK_QUEUE"], base64=True).send_message(json.dumps({"id": "a", "outputs": 3}))
        runner.run_until_idle(timeout=20)

    assert PROBE.work_calls == [("a", 1)]
    assert raw_messages(queue(names["WORK_QUEUE"])) == []
    assert queue(names["WORK_QUEUE"]).get_queue_properties().approximate_message_count == 0
    # Output messages use the host's default base64 encoding, one message per list item.
    assert sorted(raw_messages(queue(names["WORK_OUT_QUEUE"]))) == [b64("a:0"), b64("a:1"), b64("a:2")]
    assert runner.stats["work"].successes == 1
    assert runner.stats["work"].failures == 0


def test_failing_function_is_retried_then_poisoned_and_never_flushes_outputs(
    make_runner: Callable[..., LocalRunner], queue: Callable[..., QueueClient], names: dict[str, str]
) -> None:
    seen: list[tuple[str, Outcome]] = []
    lock = threading.Lock()

    def record(name: str, outcome: Outcome, duration: float) -> None:
        assert duration >= 0
        with lock:
            seen.append((name, outcome))

    runner = make_runner(settings=NO_TIMER, on_invocation=record)  # maxDequeueCount 3
    body = json.dumps({"id": "bad", "outputs": 2, "fail": True})
    with runner:
        queue(names["WORK_QUEUE"], base64=True).send_message(body)
        runner.run_until_idle(timeout=30)

    assert PROBE.work_calls == [("bad", 1), ("bad", 2), ("bad", 3)]
    assert raw_messages(queue(names["WORK_OUT_QUEUE"])) == []  # outputs set, but never sent
    # The dead-letter function (triggered by "%WORK_QUEUE%-poison") got the original body.
    assert PROBE.dead_letters == [(body.encode(), 1)]
    assert runner.stats["work"].failures == 3
    assert runner.stats["work"].poisoned == 1
    assert seen.count(("work", "failed")) == 3
    assert seen.count(("work", "poisoned")) == 1
    assert ("deadletter", "succeeded") in seen


def test_poison_queue_keeps_the_original_text_when_nobody_consumes_it(
    make_runner: Callable[..., LocalRunner], queue: Callable[..., QueueClient], names: dict[str, str]
) -> None:
    runner = make_runner(
        settings={**NO_TIMER, "AzureWebJobs.deadletter.Disabled": "true"}, queues={"maxDequeueCount": 1}
    )
    assert "deadletter: not run locally (disabled by the AzureWebJobs.deadletter.Disabled setting)" in runner.describe()
    encoded = b64(json.dumps({"id": "once", "fail": True}))
    with runner:
        queue(names["WORK_QUEUE"]).send_message(encoded)
        runner.run_until_idle(timeout=20)
    assert PROBE.work_calls == [("once", 1)]
    assert raw_messages(queue(names["WORK_QUEUE"] + "-poison")) == [encoded]


def test_failed_message_stays_invisible_for_the_visibility_timeout(
    make_runner: Callable[..., LocalRunner], queue: Callable[..., QueueClient], names: dict[str, str]
) -> None:
    runner = make_runner(settings=NO_TIMER, queues={"visibilityTimeout": "00:01:00"})
    with runner:
        queue(names["WORK_QUEUE"], base64=True).send_message(json.dumps({"id": "later", "fail": True}))
        wait_for(lambda: runner.stats["work"].failures == 1, what="the first failure")
        wait_for(lambda: runner.in_flight == 0, what="the failed message to be released")
        work = queue(names["WORK_QUEUE"])
        # Still in the queue (so not lost, not poisoned) but hidden from every consumer.
        assert work.get_queue_properties().approximate_message_count == 1
        assert raw_messages(work) == []
        assert PROBE.work_calls == [("later", 1)]


def test_setting_tokens_are_resolved_anywhere_in_binding_strings(
    make_runner: Callable[..., LocalRunner], names: dict[str, str]
) -> None:
    lines = make_runner().describe()
    assert f"work: queueTrigger {names['WORK_QUEUE']} (TestStorage)" in lines
    assert f"deadletter: queueTrigger {names['WORK_QUEUE']}-poison (TestStorage)" in lines
    assert f"    -> queue {names['ECHO_QUEUE']}-out (TestStorage) as out: func.Out[str]" in lines
    assert "tick: timerTrigger '*/5 * * * * *' (UTC)" in lines


def test_base64_encoding_both_ways(
    make_runner: Callable[..., LocalRunner], queue: Callable[..., QueueClient], names: dict[str, str]
) -> None:
    runner = make_runner(settings=NO_TIMER)  # messageEncoding defaults to base64
    with runner:
        queue(names["ECHO_QUEUE"], base64=True).send_message("hello")
        runner.run_until_idle(timeout=20)
    assert PROBE.echo_bodies == [b"hello"]
    assert raw_messages(queue(names["ECHO_QUEUE"] + "-out")) == [b64("HELLO")]


def test_none_encoding_both_ways(
    make_runner: Callable[..., LocalRunner], queue: Callable[..., QueueClient], names: dict[str, str]
) -> None:
    runner = make_runner(settings=NO_TIMER, queues={"messageEncoding": "none"})
    with runner:
        queue(names["ECHO_QUEUE"]).send_message("hello")
        # A base64 sender under "none": the function gets the base64 text, not decoded.
        queue(names["ECHO_QUEUE"], base64=True).send_message("x")
        runner.run_until_idle(timeout=20)
    assert sorted(PROBE.echo_bodies) == sorted([b"hello", b64("x").encode()])
    assert sorted(raw_messages(queue(names["ECHO_QUEUE"] + "-out"))) == sorted(["HELLO", b64("x").upper()])


def test_plain_text_under_base64_encoding_goes_to_poison_without_invocation(
    make_runner: Callable[..., LocalRunner], queue: Callable[..., QueueClient], names: dict[str, str]
) -> None:
    runner = make_runner(settings=NO_TIMER)
    with runner:
        queue(names["ECHO_QUEUE"]).send_message("not base64!")  # the classic sender mistake
        runner.run_until_idle(timeout=20)
    assert PROBE.echo_bodies == []
    assert runner.stats["echo"].invocations == 0
    assert runner.stats["echo"].poisoned == 1
    assert raw_messages(queue(names["ECHO_QUEUE"] + "-poison")) == ["not base64!"]
    assert raw_messages(queue(names["ECHO_QUEUE"] + "-out")) == []


def test_a_batch_runs_concurrently(
    make_runner: Callable[..., LocalRunner], queue: Callable[..., QueueClient], names: dict[str, str]
) -> None:
    # The barrier only opens when four invocations are inside the function at once; run one
    # at a time, each would time out and fail.
    PROBE.barrier = threading.Barrier(4, timeout=10)
    runner = make_runner(settings=NO_TIMER)
    sender = queue(names["WORK_QUEUE"], base64=True)
    sender.create_queue()  # all four are waiting before the first poll
    for n in range(4):
        sender.send_message(json.dumps({"id": f"c{n}", "barrier": True}))
    with runner:
        runner.run_until_idle(timeout=30)
    assert runner.stats["work"].successes == 4
    assert runner.stats["work"].failures == 0
    assert PROBE.max_active >= 4


def test_batch_size_one_processes_messages_one_at_a_time(
    make_runner: Callable[..., LocalRunner], queue: Callable[..., QueueClient], names: dict[str, str]
) -> None:
    runner = make_runner(settings=NO_TIMER, queues={"batchSize": 1, "newBatchThreshold": 0})
    sender = queue(names["WORK_QUEUE"], base64=True)
    sender.create_queue()
    for n in range(3):
        sender.send_message(json.dumps({"id": f"s{n}", "sleep": 0.1}))
    with runner:
        runner.run_until_idle(timeout=30)
    assert runner.stats["work"].successes == 3
    assert PROBE.max_active == 1


def test_a_long_invocation_keeps_its_message_leased(
    make_runner: Callable[..., LocalRunner], queue: Callable[..., QueueClient], names: dict[str, str]
) -> None:
    # A 2 s lease renewed at half-life: without renewal the message would reappear while the
    # function still runs and be processed twice.
    runner = make_runner(settings=NO_TIMER, message_lease_seconds=2)
    with runner:
        queue(names["WORK_QUEUE"], base64=True).send_message(json.dumps({"id": "slow", "sleep": 3}))
        runner.run_until_idle(timeout=30)
    assert PROBE.work_calls == [("slow", 1)]
    assert runner.stats["work"].successes == 1
