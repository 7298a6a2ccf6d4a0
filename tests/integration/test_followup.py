"""Follow-up reconcile passes (shared.flows.followup): one chain at a time, against Azurite's
table (the ETag-guarded lease) and queue (the chain's messages), and through the local host.

The chain's pass is injected in the service-level tests (a report saying Jobs are left or not):
the point there is the lease and the messages; the host test runs the real pass.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from devtools.azurite import Azurite
from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from shared.adapters.queues import queues_for
from shared.adapters.tables import Tables, tables_for
from shared.base.errors import TransientError
from shared.config.settings import Settings
from shared.flows.followup import (
    LEASE_GRACE_SECONDS,
    Chains,
    FollowUpReport,
    Lease,
    chains_for,
    follow_up,
    generation_of,
    message,
    timer_pass,
)
from shared.flows.reconcile_pass import ReconcileReport
from shared.outcomes import events
from tests.conftest import wait_for
from tests.integration.conftest import Queues, drain

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
NEVER = "0 0 0 1 1 *"
T0 = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
BUSY = ReconcileReport(scanned=1, running=1)
DONE = ReconcileReport(scanned=1, succeeded=1)


@pytest.fixture
def settings(app_env: dict[str, str]) -> Settings:
    return Settings.from_env(app_env)


@pytest.fixture
def followups(azurite: Azurite, settings: Settings) -> QueueClient:
    q = azurite.queue_service().get_queue_client(settings.followup_queue)
    q.create_queue()
    return q


def chains(settings: Settings) -> Chains:
    return chains_for(settings, queues_for(settings))


def messages(q: QueueClient) -> list[int | None]:
    """The generations waiting on the follow-up queue (visibility delays included: peek skips
    invisible messages, so count through the queue's properties and read them once visible)."""
    return [generation_of(text) for text in wait_for(lambda: drain_all(q), what="the follow-up messages")]


def drain_all(q: QueueClient) -> list[str] | None:
    total = int(q.get_queue_properties().approximate_message_count)
    out = drain(q)
    return out if len(out) == total else None


def ended(c: Chains) -> Lease | None:
    lease = c.read()
    return lease if lease is not None and not lease.alive(datetime.now(UTC)) else None


class Passes:
    """The injected pass: counts runs and answers with ``report``."""

    def __init__(self, report: ReconcileReport) -> None:
        self.report, self.runs = report, 0

    def __call__(self) -> ReconcileReport:
        self.runs += 1
        return self.report


class AnswerLost:
    """The real table adapter over Azurite, except that the next ``lose`` writes are applied and
    then fail as if the connection broke before the answer (storage restarting mid-response)."""

    def __init__(self, tables: Tables, lose: int = 1) -> None:
        self.tables, self.lose = tables, lose

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tables, name)

    def insert(self, entity: Any) -> str:
        return self._answer(self.tables.insert(entity))

    def replace(self, entity: Any, *, etag: str) -> str:
        return self._answer(self.tables.replace(entity, etag=etag))

    def _answer(self, etag: str) -> str:
        if self.lose > 0:
            self.lose -= 1
            raise TransientError("connection reset before the answer arrived")
        return etag


def test_a_claim_applied_with_its_answer_lost_still_runs_the_pass_and_frees_the_lease(settings: Settings) -> None:
    # bench/soak.py, Azurite restarting just as the timer claimed the lease: the claim was stored
    # but the timer saw an error, ran no pass and released nothing, so no pass ran for 5 minutes.
    sent: list[str] = []
    c = Chains(settings, lambda text, delay: sent.append(text), tables=AnswerLost(tables_for(settings)))
    timer = Passes(DONE)
    assert timer_pass(c, timer, lambda: T0) == DONE
    assert timer.runs == 1
    lease = c.read()
    assert lease is not None
    assert not lease.running, "released after the pass"
    assert not lease.alive(T0 + timedelta(seconds=1))


def test_one_chain_however_often_it_is_started(settings: Settings, followups: QueueClient) -> None:
    c = chains(settings)
    assert c.start(T0) == 1
    assert c.start(T0) is None
    assert chains(settings).start(T0 + timedelta(seconds=1)) is None  # another instance
    timer = Passes(BUSY)
    assert timer_pass(c, timer, lambda: T0) is None  # the chain reports: no second pass
    assert timer.runs == 0
    assert messages(followups) == [1]


def test_a_message_delivered_twice_continues_the_chain_once(settings: Settings, followups: QueueClient) -> None:
    c = chains(settings)
    c.start(T0)
    (text,) = [message(g) for g in messages(followups)]
    first = follow_up(text, chains=c, run_pass=Passes(BUSY), now=lambda: T0)
    again = Passes(BUSY)
    second = follow_up(text, chains=chains(settings), run_pass=again, now=lambda: T0)
    assert first.next_generation == 2
    assert second.stale
    assert again.runs == 0
    assert messages(followups) == [2]


def test_two_passes_of_one_generation_racing_continue_once(settings: Settings, followups: QueueClient) -> None:
    c, other = chains(settings), chains(settings)
    c.start(T0)
    (text,) = [message(g) for g in messages(followups)]
    results: list[int | None] = []

    def inner_pass() -> ReconcileReport:
        # While this pass runs, a second delivery of the same message is handled to the end.
        results.append(follow_up(text, chains=other, run_pass=Passes(BUSY), now=lambda: T0).next_generation)
        return BUSY

    results.append(follow_up(text, chains=c, run_pass=inner_pass, now=lambda: T0).next_generation)
    assert sorted(results, key=lambda g: g or 0) == [None, 2]
    assert messages(followups) == [2]


def test_the_chain_ends_when_no_job_is_left_and_a_new_job_starts_another(
    settings: Settings, followups: QueueClient
) -> None:
    c = chains(settings)
    c.start(T0)
    (g,) = messages(followups)
    assert g is not None
    ended = follow_up(message(g), chains=c, run_pass=Passes(DONE), now=lambda: T0)
    assert ended.next_generation is None
    assert not ended.stale
    lease = c.read()
    assert lease is not None
    assert not lease.alive(T0)
    assert c.start(T0) == 2  # at once, not after the lease's grace
    assert messages(followups) == [2]


def test_a_lost_message_is_replaced_after_its_lease_and_the_old_chain_stops(
    settings: Settings, followups: QueueClient
) -> None:
    c = chains(settings)
    c.start(T0)
    (lost,) = messages(followups)  # taken off the queue, never handled
    later = T0 + timedelta(seconds=settings.followup_seconds + LEASE_GRACE_SECONDS + 1)
    timer = Passes(BUSY)
    assert timer_pass(c, timer, lambda: later) is BUSY
    assert timer.runs == 1
    stale = Passes(BUSY)
    assert follow_up(message(lost or 0), chains=c, run_pass=stale, now=lambda: later).stale
    assert stale.runs == 0
    (g,) = messages(followups)
    assert g is not None
    assert g > (lost or 0)


def test_no_pass_overlaps_the_timer_pass(settings: Settings, followups: QueueClient) -> None:
    c = chains(settings)
    c.start(T0)
    (g,) = messages(followups)
    later = T0 + timedelta(seconds=settings.followup_seconds + LEASE_GRACE_SECONDS + 1)  # the message is late
    inside: list[object] = []

    def timer_run() -> ReconcileReport:
        # While the timer's pass runs: the late follow-up arrives, dispatch creates a Job.
        inside.append(follow_up(message(g or 0), chains=chains(settings), run_pass=Passes(BUSY), now=lambda: later))
        inside.append(chains(settings).start(later))
        return BUSY

    timer_pass(c, timer_run, lambda: later)
    stale, started = inside
    assert isinstance(stale, FollowUpReport)
    assert stale.stale
    assert started is None
    assert len(messages(followups)) == 1  # the one the timer's pass queued after itself


def test_a_pass_that_fails_frees_the_lease_for_the_retry(settings: Settings, followups: QueueClient) -> None:
    c = chains(settings)
    c.start(T0)
    (g,) = messages(followups)

    def broken() -> ReconcileReport:
        raise TimeoutError("the API server went away mid-pass")

    with pytest.raises(TimeoutError):
        follow_up(message(g or 0), chains=c, run_pass=broken, now=lambda: T0)
    retry = Passes(BUSY)  # the host delivers the message again
    assert follow_up(message(g or 0), chains=c, run_pass=retry, now=lambda: T0).next_generation == (g or 0) + 1
    assert retry.runs == 1


def test_an_aborted_pass_is_left_to_the_timer(settings: Settings, followups: QueueClient) -> None:
    c = chains(settings)
    c.start(T0)
    (g,) = messages(followups)
    aborted = ReconcileReport(running=3, aborted="cluster not ready: stopped by the idle policy")
    assert follow_up(message(g or 0), chains=c, run_pass=Passes(aborted), now=lambda: T0).next_generation is None
    timer = Passes(aborted)
    assert timer_pass(c, timer, lambda: T0) is aborted
    assert timer.runs == 1
    assert int(followups.get_queue_properties().approximate_message_count) == 0


def test_no_chain_when_follow_ups_are_off(app_env: dict[str, str], followups: QueueClient) -> None:
    c = chains(Settings.from_env({**app_env, "VNB_FOLLOWUP_SECONDS": "0"}))
    assert c.start(T0) is None
    timer = Passes(BUSY)
    assert timer_pass(c, timer, lambda: T0) is BUSY
    assert timer.runs == 1
    assert int(followups.get_queue_properties().approximate_message_count) == 0
    assert c.read() is None  # timer only: the lease is not even written


def test_outcomes_come_from_the_chain_when_the_timer_never_fires(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn, settings: Settings, followups: QueueClient
) -> None:
    # The reconcile timer is set to fire once a year: only dispatch's start of a chain and the
    # follow-up passes can report these Jobs.
    for key in ("fu-1", "fu-2", "fu-3"):
        queues.submit({"id": key, "image": IMAGE, "command": ["sh", "-c", f"echo {key}"]})
    seen: list[dict[str, object]] = []

    def all_reported() -> bool:
        seen.extend(queues.drain_events())
        return len(seen) >= 3

    with make_runner(VNB_RECONCILE_SCHEDULE=NEVER, VNB_FOLLOWUP_SECONDS="1") as host:
        wait_for(all_reported, what="three outcome events without a timer run")
        lease = wait_for(lambda: ended(chains(settings)), what="the chain to end")
        assert host.stats["reconcile"].invocations == 0
        assert host.stats["reconcile_followup"].invocations >= 1
    assert sorted(str(e["data"]["requestKey"]) for e in seen) == ["fu-1", "fu-2", "fu-3"]  # type: ignore[index]
    assert {e["type"] for e in seen} == {events.JOB_SUCCEEDED}
    assert lease.generation >= 1
    assert int(followups.get_queue_properties().approximate_message_count) == 0
