"""The idle-stop policy as values (shared.cluster.power): when to drain, cancel, stop; what a gate does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.cluster.power import Act, Observation, Phase, PowerRecord, decide, drain_seconds, gate_view
from shared.config.settings import Settings
from tests.conftest import make_env

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        make_env(
            VNB_CLUSTER_MODE="aks",
            VNB_SUBSCRIPTION_ID="s",
            VNB_RESOURCE_GROUP="rg",
            VNB_APP_PRINCIPAL_ID="p",
            VNB_IDLE_STOP_MINUTES="30",
            VNB_CLUSTER_START_SECONDS="600",
        )
    )


def seen(*, jobs: int = 0, waiting: int = 0, schedule_in: float | None = None) -> Observation:
    due = NOW + timedelta(seconds=schedule_in) if schedule_in is not None else None
    return Observation(now=NOW, unreported_jobs=jobs, waiting_requests=waiting, next_schedule=due)


def record(phase: Phase, *, since_min: float = 0, idle_min: float = 0) -> PowerRecord:
    return PowerRecord(phase, NOW - timedelta(minutes=since_min), NOW - timedelta(minutes=idle_min))


@pytest.mark.parametrize(
    ("rec", "obs", "act"),
    [
        (None, seen(), Act.CREATE),
        (record(Phase.RUNNING, idle_min=31), seen(), Act.DRAIN),
        (record(Phase.RUNNING, idle_min=29), seen(), Act.NOTHING),
        (record(Phase.RUNNING, idle_min=31), seen(jobs=1), Act.TOUCH),
        (record(Phase.RUNNING, idle_min=31), seen(waiting=2), Act.TOUCH),
        (record(Phase.RUNNING, idle_min=31), seen(schedule_in=300), Act.TOUCH),
        (record(Phase.RUNNING, idle_min=31), seen(schedule_in=3600), Act.DRAIN),
        (record(Phase.RUNNING, idle_min=0.5), seen(jobs=1), Act.NOTHING),  # touched < 1 min ago
        (record(Phase.DRAINING, since_min=0.5, idle_min=40), seen(), Act.NOTHING),  # drain not long enough
        (record(Phase.DRAINING, since_min=5, idle_min=40), seen(), Act.STOP),
        (record(Phase.DRAINING, since_min=5, idle_min=40), seen(jobs=1), Act.CANCEL),
        (record(Phase.DRAINING, since_min=5, idle_min=40), seen(waiting=1), Act.CANCEL),
        (record(Phase.DRAINING, since_min=5, idle_min=40), seen(schedule_in=60), Act.CANCEL),
        (record(Phase.STOPPED, since_min=60), seen(), Act.NOTHING),
        (record(Phase.STOPPING, since_min=1), seen(), Act.NOTHING),
    ],
)
def test_the_timer_stops_only_when_every_condition_holds(
    settings: Settings, rec: PowerRecord | None, obs: Observation, act: Act
) -> None:
    step = decide(rec, obs, settings)
    assert step.act is act, step.why
    if act in (Act.DRAIN, Act.STOP, Act.CANCEL):
        assert step.record is not None
        assert (
            step.record.phase is {Act.DRAIN: Phase.DRAINING, Act.STOP: Phase.STOPPING, Act.CANCEL: Phase.RUNNING}[act]
        )
        assert step.record.since == NOW
    if act is Act.CANCEL:
        assert step.record is not None
        assert step.record.last_activity == NOW


def test_the_drain_outlasts_every_cached_ready_answer_and_a_slow_dispatch(settings: Settings) -> None:
    assert drain_seconds(settings) > settings.ready_cache_seconds + 2 * settings.kube_timeout_seconds


@pytest.mark.parametrize(
    ("rec", "cancel", "hold", "stopped"),
    [
        (None, False, False, False),
        (record(Phase.RUNNING), False, False, False),
        (record(Phase.DRAINING), True, False, False),
        (record(Phase.STOPPING, since_min=1), False, True, True),
        (record(Phase.STOPPING, since_min=11), False, False, True),  # a timer died mid-stop: start it
        (record(Phase.STOPPED), False, False, True),
    ],
)
def test_what_a_gate_does_with_the_record(rec: PowerRecord | None, cancel: bool, hold: bool, stopped: bool) -> None:
    view = gate_view(rec, NOW)
    assert (view.cancel_drain, view.hold is not None, view.stopped) == (cancel, hold, stopped)
