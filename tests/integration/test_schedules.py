"""Periodic batches end to end: due slots go onto the requests queue in Azurite, dispatch turns
each slot into one Job on the stand-in, however often the slot was enqueued.

The fixed-clock tests call the schedule service with an injected ``now`` (the function itself
reads the wall clock); the last test fires the real ``schedules`` function on the local host.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from shared.adapters.queues import Queues as AppQueues
from shared.config.settings import Settings
from shared.schedules.enqueue import enqueue_due
from tests.conftest import job_name_for, wait_for
from tests.integration.conftest import Queues, drain
from tests.integration.test_reconcile import EventLog

pytestmark = pytest.mark.integration

NS = "vnode-batch"
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
TIMER = "0 * * * * *"


def definitions(tmp_path: Path, *schedules: dict[str, Any]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "schedules.json"
    path.write_text(json.dumps({"version": 1, "schedules": list(schedules)}))
    return path


def schedule(name: str, cron: str, zone: str = "UTC") -> dict[str, Any]:
    return {
        "name": name,
        "cron": cron,
        "timeZone": zone,
        "request": {"image": IMAGE, "command": ["sh", "-c", f"echo {name}"], "correlationId": f"schedule/{name}"},
    }


@pytest.fixture
def env(app_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **app_env,
        "VNB_SCHEDULES_TIMER": TIMER,
        "VNB_KEEP_FINISHED_SECONDS": "3600",
        "VNB_SCHEDULES_FILE": str(
            definitions(
                tmp_path,
                schedule("nightly", "0 0 * * *"),
                schedule("hourly", "0 * * * *"),
                schedule("berlin", "30 2 * * *", "Europe/Berlin"),
            )
        ),
    }


def slot_ids(queues: Queues) -> list[str]:
    return [json.loads(m.content)["id"] for m in queues.requests.peek_messages(max_messages=32)]


def test_a_slot_enqueued_by_a_repeated_run_and_a_second_instance_makes_one_job(
    env: dict[str, str], queues: Queues, kube: KubeStandIn, make_runner: Callable[..., LocalHost]
) -> None:
    settings = Settings.from_env(env)
    instance_a, instance_b = AppQueues(settings), AppQueues(settings)
    # 2026-10-25 00:30 UTC is 02:30 CEST, the first of that night's two 02:30s in Berlin.
    fire = datetime(2026, 10, 25, 0, 30, 0, 400_000, tzinfo=UTC)

    def run(now: datetime, send: Any, last: datetime | None = None) -> list[str]:
        due = enqueue_due(settings=settings, now=now, last_run=last, past_due=False, send=send.send)
        return [d.request_id for d in due]

    assert run(fire, instance_a) == ["berlin-20261025T003000Z"]
    assert run(fire + timedelta(seconds=1), instance_a) == ["berlin-20261025T003000Z"]  # fired twice
    assert run(fire + timedelta(seconds=0.3), instance_b) == ["berlin-20261025T003000Z"]  # another instance
    assert run(fire + timedelta(seconds=2), instance_a, last=fire.replace(microsecond=0)) == []  # host knows it ran
    # One hour later the wall clock shows 02:30 again (CET): a daily batch does not run twice.
    assert run(datetime(2026, 10, 25, 1, 30, 0, 200_000, tzinfo=UTC), instance_a) == []
    assert slot_ids(queues) == ["berlin-20261025T003000Z"] * 3

    log = EventLog(queues)
    with make_runner(**{k: v for k, v in env.items() if k.startswith("VNB_")}) as runner:
        runner.run_until_idle()
        wait_for(log.poll, what="the slot's completion event")
        time.sleep(1.2)
        log.poll()
    [job] = kube.jobs(NS)
    assert job["metadata"]["name"] == job_name_for("berlin-20261025T003000Z")
    creates = [r for r in kube.request_log if r[0] == "POST" and r[1].endswith("/jobs")]
    # The other deliveries met 409 AlreadyExists, or found the slot already submitted in the
    # request ledger and did not try: no second Job either way.
    assert 1 <= len(creates) <= 3
    [event] = log.events
    assert event["data"]["requestKey"] == "berlin-20261025T003000Z"
    assert event["data"]["correlationId"] == "schedule/berlin"


def test_catch_up_after_downtime_enqueues_only_the_latest_missed_slot(
    env: dict[str, str], queues: Queues, kube: KubeStandIn
) -> None:
    settings = Settings.from_env(env)
    sender = AppQueues(settings)
    last = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)  # the app was stopped for ~2.5 days
    back = datetime(2026, 11, 27, 10, 17, 20, tzinfo=UTC)
    due = enqueue_due(settings=settings, now=back, last_run=last, past_due=True, send=sender.send)
    assert [(d.request_id, d.catch_up) for d in due] == [
        ("nightly-20261127T000000Z", True),
        ("berlin-20261127T013000Z", True),  # 02:30 in Berlin (CET)
        ("hourly-20261127T100000Z", True),
    ]
    # The host keeps the stale Last for the next (regular, not past-due) run: no second catch-up.
    again = enqueue_due(
        settings=settings, now=back + timedelta(seconds=40), last_run=last, past_due=False, send=sender.send
    )
    assert again == []
    assert sorted(slot_ids(queues)) == sorted(d.request_id for d in due)
    drain(queues.requests)


def test_the_schedules_function_fired_twice_and_on_a_second_instance(
    env: dict[str, str], queues: Queues, kube: KubeStandIn, make_runner: Callable[..., LocalHost], tmp_path: Path
) -> None:
    every_minute = definitions(tmp_path / "fn", schedule("minutely", "* * * * *"))
    settings = {k: v for k, v in env.items() if k.startswith("VNB_")} | {"VNB_SCHEDULES_FILE": str(every_minute)}
    # Stay clear of a minute boundary, where the runner's own timer would fire for the next slot.
    while not 1 <= (datetime.now(UTC) + timedelta(seconds=2)).second <= 50:
        time.sleep(0.5)
    log = EventLog(queues)
    first, second = make_runner(**settings), make_runner(**settings)
    assert first.fire_timer("schedules") == "succeeded"
    assert first.fire_timer("schedules") == "succeeded"  # ScheduleStatus.Last says it ran: nothing
    assert second.fire_timer("schedules") == "succeeded"  # another instance, same slot id
    ids = slot_ids(queues)
    assert len(ids) == 2
    assert len(set(ids)) == 1
    assert ids[0].startswith("minutely-")
    # Run the queued requests with the schedules timer disabled (as the host's
    # AzureWebJobs.<name>.Disabled does), so a minute boundary during a slow run cannot add a slot.
    worker = make_runner(**settings, **{"AzureWebJobs.schedules.Disabled": "true"})
    with worker:
        worker.run_until_idle()
        wait_for(log.poll, what="the completion event")
    assert [j["metadata"]["name"] for j in kube.jobs(NS)] == [job_name_for(ids[0])]
    assert [e["data"]["requestKey"] for e in log.events] == [ids[0]]
