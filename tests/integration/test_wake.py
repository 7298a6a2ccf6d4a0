"""Waking waiting requests when capacity frees, over real sockets: Azurite's queue (Update Message
with the handle the dispatcher kept in the ledger), the HTTPS Kubernetes stand-in with small ACI
quotas, and the app's functions in the local host (``shared.flows.wake``).

Each test lets a waiting request sleep for an hour (VNB_CAPACITY_SLEEP_SECONDS=3600): only a
wake-up can bring it back within the test's wait.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from devtools.standins.virtual_node.provider import AciSettings
from devtools.standins.virtual_node.quotas import QuotaSettings
from shared.base.handles import MessageHandle
from shared.ledger.records import WAKE, State, view
from tests.conftest import wait_for
from tests.integration.conftest import Queues
from tests.integration.test_capacity import ledger_of, outcomes, request

pytestmark = pytest.mark.integration

ASLEEP = {"VNB_CAPACITY_DEFER_SECONDS": "1", "VNB_CAPACITY_SLEEP_SECONDS": "3600"}


@pytest.fixture
def kube() -> Iterator[KubeStandIn]:
    with KubeStandIn(pod_start_seconds=0.02, aci=AciSettings(quotas=QuotaSettings(container_groups=10))) as server:
        yield server


def test_a_request_waiting_for_capacity_is_woken_when_the_blocking_job_ends(
    make_runner: Callable[..., LocalHost],
    queues: Queues,
    kube: KubeStandIn,
    caplog: pytest.LogCaptureFixture,
    app_env: dict[str, str],
) -> None:
    caplog.set_level(logging.INFO, logger="vnode_batch")
    ledger = ledger_of(app_env)
    queues.submit(request("blocker", seconds=3))
    seen: dict[str, str] = {}
    with make_runner(VNB_CAPACITY_CONTAINER_GROUPS="1", **ASLEEP):
        wait_for(lambda: kube.jobs("vnode-batch"), what="the blocker's Job")
        queues.submit(request("sleeper", seconds=1))
        wait_for(
            lambda: (r := ledger.get("sleeper")) is not None and WAKE in (r.queue or {}),
            what="the sleeper waiting for capacity with its message's handle in the ledger",
        )
        record = ledger.get("sleeper")
        assert record is not None
        assert record.state == State.WAITING_FOR_CAPACITY
        assert MessageHandle.of((record.queue or {})[WAKE]) is not None
        assert WAKE not in (view(record).get("queue") or {})  # the API never shows a pop receipt
        wait_for(lambda: len(outcomes(queues, seen)) == 2, what="both requests finished", timeout=90)
    assert seen == {"blocker": "succeeded:Completed", "sleeper": "succeeded:Completed"}
    assert "woke 1 waiting request(s)" in caplog.text


def test_teams_wake_the_team_below_its_share_first(
    make_runner: Callable[..., LocalHost],
    queues: Queues,
    kube: KubeStandIn,
    caplog: pytest.LogCaptureFixture,
    app_env: dict[str, str],
    tmp_path: Any,
) -> None:
    """Teams a and b: a nominal share of one container group each, each may borrow one more. a
    takes both (borrowing b's idle share); then a-2 and b-0 wait, asleep. When a-0 ends, b — below
    its share — is woken and admitted though a-2 waited longer; a-2 is woken when a-1 ends. Each is
    put back once only: a wake in the wrong order would put a-2 back a second time (admission
    refuses it while b is owed its share)."""
    import json

    teams = {
        "version": 1,
        "teams": [
            {
                "name": name,
                "members": {"principals": [f"00000000-0000-0000-0000-00000000000{i}"]},
                "nominal": {"cores": 1, "containerGroups": 1},
                "borrowingLimit": {"cores": 1, "containerGroups": 1},
                "weight": 1,
                "priorities": ["normal"],
                "registries": ["mcr.microsoft.com"],
            }
            for i, name in enumerate(("a", "b"), 1)
        ],
    }
    path = tmp_path / "teams.json"
    path.write_text(json.dumps(teams))
    ledger = ledger_of(app_env)
    seen: dict[str, str] = {}
    caplog.set_level(logging.INFO, logger="vnode_batch")
    with make_runner(VNB_CAPACITY_CONTAINER_GROUPS="2", VNB_CAPACITY_CORES="2", VNB_TEAMS_FILE=str(path), **ASLEEP):
        queues.submit(request("a-0", seconds=8, team="a"))
        queues.submit(request("a-1", seconds=16, team="a"))
        wait_for(lambda: len(kube.jobs("vnode-batch")) == 2, what="team a borrowing the whole budget")
        queues.submit(request("a-2", seconds=1, team="a"))
        wait_for(lambda: (r := ledger.get("a-2")) is not None and WAKE in (r.queue or {}), what="a-2 asleep")
        queues.submit(request("b-0", seconds=1, team="b"))
        wait_for(lambda: (r := ledger.get("b-0")) is not None and WAKE in (r.queue or {}), what="b-0 asleep")
        wait_for(lambda: len(outcomes(queues, seen)) == 4, what="all four finished", timeout=120)
    assert set(seen.values()) == {"succeeded:Completed"}
    b0, a2 = ledger.get("b-0"), ledger.get("a-2")
    assert b0 is not None
    assert a2 is not None
    # a-0 ended first (8 s): its group went to b, below its share, though a-2 had waited longer.
    assert b0.times[State.SUBMITTED.value] < a2.times[State.SUBMITTED.value]
    assert (a2.attempts, b0.attempts) == (1, 1)


def test_a_handle_wakes_its_message_once_and_a_stale_one_is_told_apart(app_env: dict[str, str]) -> None:
    """Queues.wake against Azurite's Update Message: a fresh handle makes the message visible now;
    once the message was received (new pop receipt) or deleted, the old handle answers False."""
    from shared.adapters.queues import Queues as QueueAdapter
    from shared.config.settings import Settings

    adapter = QueueAdapter(Settings.from_env(app_env))
    queue = app_env["VNB_REQUESTS_QUEUE"]
    adapter.ensure(queue)
    handle = adapter.send_for_handle(queue, "asleep", visibility_timeout=3600)
    assert list(adapter.receive(queue, visibility_timeout=5)) == []  # invisible for an hour
    assert adapter.wake(queue, handle) is True
    (got,) = list(adapter.receive(queue, visibility_timeout=5))
    assert got.body == "asleep"
    assert adapter.wake(queue, handle) is False  # received since: its receipt is spent
    adapter.delete(queue, got)
    assert adapter.wake(queue, MessageHandle(got.id, got.pop_receipt)) is False  # deleted
