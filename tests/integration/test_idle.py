"""Idle stop and start of the AKS cluster, against the ARM stand-in (stop/start LROs, power
states), the Kubernetes stand-in (its API goes away while stopped), Azurite queues and tables
(the shared power record, ETag-guarded), with the app's real SDK clients.

The policy's clock is injected (``now=``): the tests jump over the idle minutes and the drain
instead of sleeping through them. ARM, Kubernetes and storage run in real time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.runner import LocalRunner
from shared.adapters.arm import ArmAdapter, ArmCallFailed
from shared.cluster.bootstrap import AksGate
from shared.cluster.idle_gate import IdleGate
from shared.cluster.power import Act, Phase, PowerRecord
from shared.cluster.power_store import PowerStore
from shared.config.settings import Settings
from shared.flows.dispatch import dispatch
from shared.flows.idle import idle_step
from shared.flows.inbound import Inbound, Outcome
from shared.job.render import job_name
from tests.conftest import wait_for
from tests.integration.bootstrap_fixtures import *  # noqa: F403
from tests.integration.bootstrap_fixtures import NS, RG, AksWorld, drive
from tests.integration.conftest import Queues
from tests.integration.test_reconcile import EventLog

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
T0 = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


class Ticks:
    """A monotonic clock for a gate's cache, moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def aks(make_aks: Callable[..., AksWorld], tmp_path: Path) -> AksWorld:
    """The bootstrapped AKS world with idle stop on (replaces bootstrap_fixtures' ``aks``, so
    ``aks_runner`` runs against this one)."""
    aks = make_aks()
    aks.arm.on_power_changed = aks.kube.power
    schedules = tmp_path / "schedules.json"
    schedules.write_text(json.dumps({"version": 1, "schedules": []}))
    aks.env.update(
        {
            "VNB_IDLE_STOP_MINUTES": "30",
            "VNB_SCHEDULES_FILE": str(schedules),
            # each test gets its own cluster record (the table is shared by the session)
            "VNB_CLUSTER_NAME": "vnode-batch-aks",
            "VNB_SUBSCRIPTION_ID": aks.arm.subscription_id,
        }
    )
    aks.env["VNB_RESOURCE_GROUP"] = RG
    ready, _ = drive(AksGate(aks.settings()))
    assert ready.cluster is not None, "bootstrap first"
    PowerStoreReset(aks.settings())
    return aks


def PowerStoreReset(settings: Settings) -> None:  # a fixture helper, not a type
    store = PowerStore(settings)
    record, etag = store.read()
    if record is not None and etag is not None:
        store.swap(PowerRecord(Phase.RUNNING, T0, T0, "test start"), etag)


def idle_gate(world: AksWorld, clock: Clock, ticks: Callable[[], float] | None = None, **overrides: str) -> IdleGate:
    settings = world.settings(**overrides)
    extra: dict[str, Any] = {"clock": ticks} if ticks is not None else {}
    return IdleGate(settings, inner=AksGate(settings), store=PowerStore(settings), now=clock, **extra)


def stops(world: AksWorld) -> list[Any]:
    return [r for r in world.arm.requests if r.method == "POST" and r.path.lower().endswith("/stop")]


def power(world: AksWorld) -> str:
    cluster = world.arm.get(world.cluster_id)
    assert cluster is not None
    return str(cluster["properties"]["powerState"]["code"])


def submit(gate: IdleGate, key: str, command: str = "echo hi") -> Outcome:
    body = json.dumps({"id": key, "image": IMAGE, "command": ["sh", "-c", command]}).encode()
    requeued: list[str] = []
    result = dispatch(
        Inbound(message_id=f"m-{key}", body=body),
        settings=gate.settings,
        gate=gate,
        requeue=lambda text, delay: requeued.append(text),
    )
    return result.outcome


# --- the ARM side ---------------------------------------------------------------------------


def test_stop_and_start_are_lros_with_power_states_and_refuse_overlap(aks: AksWorld) -> None:
    world = aks
    s = world.settings()
    arm = ArmAdapter(subscription_id=s.subscription_id or "", endpoint=s.arm_endpoint)
    world.arm.cluster_stop_seconds = 0.5
    arm.stop_cluster(RG, s.cluster_name)
    observed = arm.get_cluster(RG, s.cluster_name)
    assert observed is not None
    assert observed["properties"]["provisioningState"] == "Stopping"
    assert observed["properties"]["powerState"]["code"] == "Running"
    with pytest.raises(ArmCallFailed) as overlap:  # a second instance, at the same moment
        arm.start_cluster(RG, s.cluster_name)
    assert overlap.value.fault.status == 409
    assert "Another operation (Stopping) is in progress" in str(overlap.value)
    with pytest.raises(ArmCallFailed) as put:  # any write waits for the stop, as ARM makes it
        arm.put_cluster(RG, s.cluster_name, observed)
    assert put.value.fault.status == 409
    wait_for(lambda: power(world) == "Stopped", what="the cluster to stop")
    with pytest.raises(requests.exceptions.ConnectionError):  # the control plane is gone
        requests.get(f"{world.kube.url}/version", timeout=1, verify=False)
    arm.stop_cluster(RG, s.cluster_name)  # already stopped: 204, nothing to do
    assert world.arm.power_transitions == [("vnode-batch-aks", "Stopped")]
    arm.start_cluster(RG, s.cluster_name)
    wait_for(lambda: power(world) == "Running", what="the cluster to start")
    assert world.arm.power_transitions[-1] == ("vnode-batch-aks", "Running")


# --- the policy -------------------------------------------------------------------------------


def test_idle_stop_only_when_every_condition_holds_and_a_request_starts_it_again(
    aks: AksWorld, aks_runner: Callable[..., LocalRunner], azurite: Any
) -> None:
    world = aks
    clock = Clock()
    gate = idle_gate(world, clock)
    waiting = {"n": 0}
    count: Callable[[], int] = lambda: waiting["n"]  # noqa: E731
    idle_step(settings=gate.settings, gate=gate, waiting=count, now=clock)  # the record (running, active now)

    # 31 minutes later, but a request waits in the queue: no drain
    clock.advance(minutes=31)
    waiting["n"] = 1
    assert idle_step(settings=gate.settings, gate=gate, waiting=count, now=clock).step.act is Act.TOUCH  # type: ignore[union-attr]
    waiting["n"] = 0

    # a Job is in flight: no drain either (and the clock of activity moves)
    clock.advance(minutes=31)
    assert submit(gate, "busy-1", "echo busy; sleep 3") is Outcome.CREATED
    step = idle_step(settings=gate.settings, gate=gate, waiting=count, now=clock).step
    assert step is not None
    assert step.act is Act.TOUCH
    assert "Job(s) not yet reported" in step.why
    from shared.flows.reconcile import run

    wait_for(
        lambda: run(settings=gate.settings, gate=gate.inner, send_event=lambda text: "id").reported,
        what="the busy Job to be reported",
    )

    # a schedule due within the start-up time: no drain
    clock.advance(minutes=31)
    due = (clock() + timedelta(minutes=5)).strftime("%M %H * * *")
    Path(gate.settings.schedules_file).write_text(
        json.dumps(
            {
                "version": 1,
                "schedules": [{"name": "soon", "cron": due, "timeZone": "UTC", "request": {"image": IMAGE}}],
            }
        )
    )
    assert idle_step(settings=gate.settings, gate=gate, waiting=count, now=clock).step.act is Act.TOUCH  # type: ignore[union-attr]
    Path(gate.settings.schedules_file).write_text(json.dumps({"version": 1, "schedules": []}))

    # now everything holds: drain, then (after the drain time) stop
    clock.advance(minutes=31)
    assert idle_step(settings=gate.settings, gate=gate, waiting=count, now=clock).step.act is Act.DRAIN  # type: ignore[union-attr]
    clock.advance(seconds=10)
    assert idle_step(settings=gate.settings, gate=gate, waiting=count, now=clock).step.act is Act.NOTHING  # type: ignore[union-attr]
    assert stops(world) == []
    clock.advance(minutes=5)
    report = idle_step(settings=gate.settings, gate=gate, waiting=count, now=clock)
    assert report.step is not None
    assert report.step.act is Act.STOP
    assert report.stopped
    assert len(stops(world)) == 1
    wait_for(lambda: power(world) == "Stopped", what="the cluster to stop")
    record, _ = gate.store.read()
    assert record is not None
    assert record.phase is Phase.STOPPED

    # the next requests find it stopped: the app starts it and runs them to completion
    queues = Queues(azurite.queue_service(), world.env)
    for key in ("after-idle-1", "after-idle-2"):
        queues.submit({"id": key, "image": IMAGE, "command": ["sh", "-c", f"echo {key}"]})
    log = EventLog(queues)
    with aks_runner(VNB_READY_CACHE_SECONDS="0.05"):
        wait_for(lambda: len(log.poll()) >= 2, what="both requests to complete after the start", timeout=60)
    assert sorted((e["data"]["requestKey"], e["data"]["outcome"]) for e in log.events) == [
        ("after-idle-1", "succeeded"),
        ("after-idle-2", "succeeded"),
    ]
    starts = [r for r in world.arm.requests if r.method == "POST" and r.path.lower().endswith("/start")]
    assert len([r for r in starts if r.status == 202]) == 1, "one start, whatever the number of waiting requests"
    assert power(world) == "Running"
    record, _ = gate.store.read()
    assert record is not None
    assert record.phase is Phase.RUNNING


def test_a_request_during_the_drain_cancels_the_stop(aks: AksWorld) -> None:
    world = aks
    clock = Clock()
    timer = idle_gate(world, clock)  # instance A runs the reconcile timer
    dispatcher = idle_gate(world, clock)  # instance B takes a request
    idle_step(settings=timer.settings, gate=timer, waiting=lambda: 0, now=clock)
    clock.advance(minutes=31)
    assert idle_step(settings=timer.settings, gate=timer, waiting=lambda: 0, now=clock).step.act is Act.DRAIN  # type: ignore[union-attr]
    clock.advance(seconds=20)
    assert submit(dispatcher, "drain-1", "echo hello; sleep 2") is Outcome.CREATED
    record, _ = timer.store.read()
    assert record is not None
    assert record.phase is Phase.RUNNING, "B put the record back before creating its Job"
    clock.advance(minutes=10)
    step = idle_step(settings=timer.settings, gate=timer, waiting=lambda: 0, now=clock).step
    assert step is not None
    assert step.act is not Act.STOP
    assert stops(world) == []
    assert power(world) == "Running"


class RacingStore(PowerStore):
    """The real store; just before its first compare-and-swap, another instance acts (``other``)."""

    def __init__(self, settings: Settings, other: Callable[[], object]) -> None:
        super().__init__(settings)
        self.other: Callable[[], object] | None = other

    def swap(self, record: PowerRecord, etag: str) -> bool:
        if self.other is not None:
            other, self.other = self.other, None
            other()
        return super().swap(record, etag)


def test_racing_stop_and_request_one_wins_and_the_other_sees_it(aks: AksWorld) -> None:
    """A has read ``draining`` and is about to write ``stopping`` when B's request cancels the
    drain: A's write fails on the ETag, nothing is stopped, and B's Job runs."""
    world = aks
    clock = Clock()
    dispatcher = idle_gate(world, clock)
    outcomes: list[Outcome] = []
    settings = world.settings()
    timer = IdleGate(
        settings,
        inner=AksGate(settings),
        store=PowerStore(settings),
        now=clock,
    )
    idle_step(settings=settings, gate=timer, waiting=lambda: 0, now=clock)
    clock.advance(minutes=31)
    idle_step(settings=settings, gate=timer, waiting=lambda: 0, now=clock)  # drain
    clock.advance(minutes=5)
    timer.store = RacingStore(settings, lambda: outcomes.append(submit(dispatcher, "race-1", "echo raced")))
    report = idle_step(settings=settings, gate=timer, waiting=lambda: 0, now=clock)
    assert outcomes == [Outcome.CREATED]
    assert report.step is not None
    assert report.step.act is Act.STOP  # it wanted to …
    assert not report.stopped  # … and lost the compare-and-swap
    assert stops(world) == []
    record, _ = timer.store.read()
    assert record is not None
    assert record.phase is Phase.RUNNING


def test_no_stop_with_a_job_from_an_instance_that_trusted_an_older_ready_answer(aks: AksWorld) -> None:
    """B read the record before the drain began and still trusts it (its cache); its Job is
    created right before A writes ``stopping``. A's CAS succeeds (B never wrote), but A's last
    look at the Jobs, after the CAS, finds B's Job: no stop, the record goes back to running."""
    world = aks
    clock = Clock()
    ticks = Ticks()
    dispatcher = idle_gate(world, clock, ticks, VNB_READY_CACHE_SECONDS="60")
    assert dispatcher.check().cluster is not None  # B reads "running" and trusts it for 60 s
    settings = world.settings()
    timer = IdleGate(settings, inner=AksGate(settings), store=PowerStore(settings), now=clock)
    idle_step(settings=settings, gate=timer, waiting=lambda: 0, now=clock)
    clock.advance(minutes=31)
    idle_step(settings=settings, gate=timer, waiting=lambda: 0, now=clock)  # drain
    clock.advance(minutes=5)
    ticks.t += 30  # B is still inside its cache window: it does not read the record
    outcomes: list[Outcome] = []
    timer.store = RacingStore(settings, lambda: outcomes.append(submit(dispatcher, "stale-1", "echo late; sleep 5")))
    report = idle_step(settings=settings, gate=timer, waiting=lambda: 0, now=clock)
    assert outcomes == [Outcome.CREATED]
    assert report.step is not None
    assert report.step.act is Act.STOP
    assert not report.stopped
    assert stops(world) == []
    record, _ = timer.store.read()
    assert record is not None
    assert record.phase is Phase.RUNNING
    assert "Job(s) appeared during the drain" in record.reason
    assert world.kube.job(NS, job_name("stale-1", settings=settings)) is not None


def test_operator_commands_refuse_with_work_in_flight_then_stop_and_start(
    aks: AksWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.cli.main import main

    world = aks
    local = tmp_path / "local.settings.json"
    local.write_text(json.dumps({"IsEncrypted": False, "Values": world.env}))
    gate = idle_gate(world, Clock())
    assert submit(gate, "op-1", "echo working; sleep 30") is Outcome.CREATED
    assert main(["--settings", str(local), "cluster", "stop"]) == 1
    assert "refusing to stop" in capsys.readouterr().err
    assert stops(world) == []

    world.kube.delete_job_behind_the_apps_back(NS, job_name("op-1", settings=gate.settings))
    from shared.flows.reconcile import run

    wait_for(
        lambda: run(settings=gate.settings, gate=gate.inner, send_event=lambda text: "id").reported,
        what="the lost Job to be reported",
    )
    assert main(["--settings", str(local), "cluster", "stop"]) == 0
    wait_for(lambda: power(world) == "Stopped", what="the cluster to stop")
    record, _ = gate.store.read()
    assert record is not None
    assert record.phase is Phase.STOPPED
    assert main(["--settings", str(local), "cluster", "status"]) == 0
    out = capsys.readouterr().out
    assert "powerState Stopped" in out
    assert "stopped since" in out
    assert main(["--settings", str(local), "cluster", "start"]) == 0
    wait_for(lambda: power(world) == "Running", what="the cluster to start")
    record, _ = gate.store.read()
    assert record is not None
    assert record.phase is Phase.RUNNING
