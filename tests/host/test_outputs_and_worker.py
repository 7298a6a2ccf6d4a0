"""Output bindings, invocation failures, functionTimeout and the worker thread pool."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from devtools.host import LocalHost, protos
from devtools.host.bindings import read_as_enumerable
from devtools.host.settings import worker_thread_count
from tests.conftest import wait_for
from tests.host.conftest import probe, raw_messages

Q = Callable[[str], QueueClient]


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ('{"a": 1, "b": [1, 2]}', ['{\r\n  "a": 1,\r\n  "b": [\r\n    1,\r\n    2\r\n  ]\r\n}']),
        ('["x", {"k": "v"}, 3]', ["x", '{\r\n  "k": "v"\r\n}', "3"]),
        ("plain text", ["plain text"]),
        ("  {not json}", None),
    ],
)
def test_a_str_output_is_read_as_enumerable_like_the_host(
        make_host: Callable[..., LocalHost], queue: Q, names: dict[str, str], text: str,
        written: list[str] | None) -> None:
    host = make_host(settings={"AzureWebJobs.sink.Disabled": "true"})
    queue(f"{names['ECHO_QUEUE']}-out").create_queue()
    outcome = host.deliver("echo", text)
    if written is None:  # looks like JSON but does not parse: the output, so the invocation, fails
        assert not outcome.ok
        assert raw_messages(queue(f"{names['ECHO_QUEUE']}-out")) == []
        return
    assert outcome.ok, outcome.error
    assert raw_messages(queue(f"{names['ECHO_QUEUE']}-out")) == written


def test_list_elements_are_written_verbatim() -> None:
    data = protos.TypedData(json=json.dumps(['{"a": 1}', "[1]", "x"]))
    assert read_as_enumerable(data) == ['{"a": 1}', "[1]", "x"]


def test_returning_a_value_without_a_return_binding_fails_the_invocation(
        make_host: Callable[..., LocalHost], queue: Q, names: dict[str, str]) -> None:
    host = make_host()
    outcome = host.deliver("returns", "anything")
    assert not outcome.ok
    assert "without a $return binding" in (outcome.error or "")


def test_function_timeout_fails_the_invocation_and_restarts_the_worker_killing_siblings(
        make_host: Callable[..., LocalHost], queue: Q, names: dict[str, str], probe_file: Path) -> None:
    work = names["WORK_QUEUE"]
    host = make_host(host={"functionTimeout": "00:00:02"}, queues={"maxDequeueCount": 1},
                     settings={"AzureWebJobs.deadletter.Disabled": "true"})
    with host:
        queue(work).send_message(json.dumps({"id": "stuck", "sleep": 60}))
        queue(work).send_message(json.dumps({"id": "sibling", "sleep": 6}))
        wait_for(lambda: queue(f"{work}-poison").get_queue_properties().approximate_message_count == 2,
                 what="both messages to fail and be poisoned", timeout=30)
    started = probe(probe_file, "work")
    assert sorted(c["id"] for c in started) == ["sibling", "stuck"]
    assert len({c["pid"] for c in started}) == 1  # both ran in the one worker process
    assert probe(probe_file, "work-done") == []  # the sibling died with the worker
    assert host.worker.restarts == 1
    assert host.stats["work"].failures == 2


@pytest.mark.parametrize(("setting", "expected_max"), [("1", 1), (None, 4)])
def test_sync_functions_run_on_the_worker_thread_pool(
        make_host: Callable[..., LocalHost], queue: Q, names: dict[str, str], probe_file: Path,
        setting: str | None, expected_max: int) -> None:
    settings = {"PYTHON_THREADPOOL_THREAD_COUNT": setting} if setting else {}
    with make_host(settings=settings) as host:
        for n in range(4):
            queue(names["WORK_QUEUE"]).send_message(json.dumps({"id": f"m{n}", "sleep": 1.0}))
        wait_for(lambda: len(probe(probe_file, "work-done")) == 4, what="four invocations", timeout=30)
        host.run_until_idle(timeout=20)
    # Four one-second sleeps received in one batch: one thread runs them one at a time, the
    # default pool (min(32, cpu + 4) >= 5 threads) runs them together.
    assert max(c["active"] for c in probe(probe_file, "work")) == expected_max


def test_thread_count_setting_and_default() -> None:
    import os

    assert worker_thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "3"}) == 3
    assert worker_thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "zero"}) == min(32, (os.cpu_count() or 1) + 4)
    assert worker_thread_count({}) == min(32, (os.cpu_count() or 1) + 4)
