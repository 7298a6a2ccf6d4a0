"""The request ledger over Azurite's table service, the Kubernetes stand-in and the app's own
functions: every transition recorded once (redelivery, crashes between steps, racing
instances), finished keys never run again, and the ledger never holds a secret."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from devtools.azurite import Azurite
from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from shared.adapters.kube import Cluster, from_kubeconfig_file
from shared.adapters.tables import EntityPage, Stored, TableError, Tables
from shared.base.errors import TransientError
from shared.cluster.readiness import Readiness
from shared.config.settings import Settings
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound, Outcome
from shared.flows.reconcile import KubeJobs, reconcile
from shared.intake.request import parse_request
from shared.job.render import JobMeta, build_job, job_name
from shared.ledger import tracking
from shared.ledger.records import State
from shared.ledger.store import Ledger
from tests.conftest import wait_for
from tests.integration.conftest import Queues
from tests.integration.test_dispatch import condition
from tests.integration.test_reconcile import EventLog

pytestmark = pytest.mark.integration

NS = "vnode-batch"
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
SECRET = "s3cr3t-9f2c-do-not-store"


@pytest.fixture
def settings(app_env: dict[str, str]) -> Settings:
    return Settings.from_env({**app_env, "VNB_KEEP_FINISHED_SECONDS": "0"})


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger(Tables(settings))


@pytest.fixture
def cluster(settings: Settings) -> Cluster:
    assert settings.kubeconfig
    return Cluster(from_kubeconfig_file(settings.kubeconfig, context=None, timeout=5), NS)


class Gate:
    """A cluster gate answering from a switch (the ClusterGate interface, as AksGate answers)."""

    def __init__(self, cluster: Cluster | None, reason: str = "cluster Creating") -> None:
        self.cluster = cluster
        self.reason = reason

    def check(self) -> Readiness:
        return Readiness(cluster=self.cluster, reason="" if self.cluster else self.reason)


class FlakyStore:
    """The real table adapter with a fault at its boundary: the chosen write fails as a
    storage outage would (TableError, what the adapter raises for a 5xx or a reset)."""

    def __init__(self, inner: Tables, *, fail: Callable[[str, Mapping[str, Any]], bool]) -> None:
        self.inner = inner
        self.fail = fail
        self.writes: list[tuple[str, str]] = []

    def get(self, partition_key: str, row_key: str) -> Stored | None:
        return self.inner.get(partition_key, row_key)

    def insert(self, entity: Mapping[str, Any]) -> str:
        if self.fail("insert", entity):
            raise TableError("injected: storage unavailable", status=503)
        etag = self.inner.insert(entity)  # EntityExists when it is there: not a write
        self.writes.append(("insert", str(entity["state"])))
        return etag

    def replace(self, entity: Mapping[str, Any], *, etag: str) -> str:
        if self.fail("replace", entity):
            raise TableError("injected: storage unavailable", status=503)
        new = self.inner.replace(entity, etag=etag)  # EntityChanged on a lost race: not a write
        self.writes.append(("replace", str(entity["state"])))
        return new

    def delete(self, partition_key: str, row_key: str, *, etag: str) -> bool:
        return self.inner.delete(partition_key, row_key, etag=etag)

    def query(self, query_filter: str, **kw: Any) -> EntityPage:
        return self.inner.query(query_filter, **kw)


def message(body: dict[str, Any], message_id: str = "m-1") -> Inbound:
    return Inbound(message_id=message_id, body=json.dumps(body).encode(), inserted_at=datetime.now(UTC))


def job_creates(kube: KubeStandIn) -> int:
    return len([r for r in kube.request_log if r[0] == "POST" and r[1].endswith("/jobs")])


def test_a_request_through_the_app_records_each_state_once_and_a_late_redelivery_runs_nothing(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn, ledger: Ledger, settings: Settings
) -> None:
    body = {"id": "life-1", "image": IMAGE, "command": ["sh", "-c", "echo hi"], "labels": {"team": "billing"}}
    queues.submit(body)
    log = EventLog(queues)
    with make_runner(VNB_KEEP_FINISHED_SECONDS="0") as runner:
        wait_for(log.poll, what="the completion event")
        wait_for(lambda: not kube.jobs(NS), what="the reported Job to be deleted at once")
        done = ledger.get("life-1")
        assert done is not None
        assert done.state == State.SUCCEEDED
        queues.submit(body)  # a late redelivery, after the Job is gone
        queues.submit(body)
        runner.run_until_idle()
    again = ledger.get("life-1")
    assert again is not None
    assert again.etag == done.etag, "a redelivery of a finished key writes nothing"
    assert {"received", "submitted", "succeeded"} <= set(again.times)
    assert again.job_name == job_name("life-1", settings=settings)
    assert again.labels == {"team": "billing"}
    assert again.outcome is not None
    # the virtual node loses exit codes (azure-aci#417): the event says null, the ledger keeps none
    assert again.outcome.get("exitCode") is None
    assert again.outcome["eventId"] == log.events[0]["id"]
    assert job_creates(kube) == 1
    assert kube.jobs(NS) == []
    assert [e["type"] for e in log.poll()] == ["io.vnodebatch.job.succeeded"]


def test_waiting_for_the_cluster_is_recorded_with_attempts_then_submitted(
    settings: Settings, ledger: Ledger, cluster: Cluster, kube: KubeStandIn
) -> None:
    requeued: list[str] = []
    gate = Gate(None)
    first = dispatch(
        message({"id": "wait-1", "image": IMAGE}),
        settings=settings,
        gate=gate,
        requeue=lambda text, delay: requeued.append(text),
        ledger=ledger,
    )
    assert first.outcome == Outcome.DEFERRED
    record = ledger.get("wait-1")
    assert record is not None
    assert record.state == State.WAITING_FOR_CLUSTER
    assert (record.attempts, record.reason) == (1, "cluster Creating")
    # The same (re-enqueued) message delivered twice once the cluster is ready: one Job.
    gate.cluster = cluster
    for _ in range(2):
        result = dispatch(
            Inbound(message_id="m-2", body=requeued[0].encode()),
            settings=settings,
            gate=gate,
            requeue=lambda text, delay: requeued.append(text),
            ledger=ledger,
        )
        assert result.outcome in (Outcome.CREATED, Outcome.DUPLICATE)
    record = ledger.get("wait-1")
    assert record is not None
    assert record.state == State.SUBMITTED
    assert set(record.times) == {"received", "waiting-for-cluster", "submitted"}
    assert job_creates(kube) == 1  # the second delivery found "submitted" and did not try
    assert len(kube.jobs(NS)) == 1


def test_crash_between_job_create_and_ledger_write_is_repaired_by_the_redelivery(
    settings: Settings, cluster: Cluster, kube: KubeStandIn
) -> None:
    tables = Tables(settings)
    broken = FlakyStore(tables, fail=lambda op, entity: op == "replace" and entity["state"] == "submitted")
    gate = Gate(cluster)
    with pytest.raises(TableError):  # the host would retry the message
        dispatch(
            message({"id": "crash-1", "image": IMAGE}),
            settings=settings,
            gate=gate,
            requeue=lambda t, d: None,
            ledger=Ledger(broken),
        )
    assert len(kube.jobs(NS)) == 1
    healthy = FlakyStore(tables, fail=lambda op, entity: False)
    result = dispatch(
        message({"id": "crash-1", "image": IMAGE}),
        settings=settings,
        gate=gate,
        requeue=lambda t, d: None,
        ledger=Ledger(healthy),
    )
    assert result.outcome == Outcome.DUPLICATE
    assert healthy.writes == [("replace", "submitted")]
    record = Ledger(tables).get("crash-1")
    assert record is not None
    assert record.state == State.SUBMITTED
    assert len(kube.jobs(NS)) == 1


def test_a_failed_claim_sends_nothing_and_the_next_pass_claims_and_sends_once(
    settings: Settings, cluster: Cluster, kube: KubeStandIn, queues: Queues
) -> None:
    """The outcome is claimed in the ledger before its event goes out (issue 20): a claim that
    fails sends nothing; the next pass claims it and sends it, once."""
    tables = Tables(settings)
    ledger = Ledger(tables)
    dispatch(
        message({"id": "rc-1", "image": IMAGE, "command": ["sh", "-c", "echo x"]}),
        settings=settings,
        gate=Gate(cluster),
        requeue=lambda t, d: None,
        ledger=ledger,
    )
    wait_for(
        lambda: condition(kube.job(NS, job_name("rc-1", settings=settings)) or {}) == "Complete",
        what="the Job to complete",
    )
    sent: list[str] = []
    broken = FlakyStore(tables, fail=lambda op, entity: entity["state"] in ("succeeded", "failed"))
    first = reconcile(settings=settings, jobs=KubeJobs(cluster), send_event=sent.append, ledger=Ledger(broken))
    assert first.retry_later == 1
    assert sent == [], "no event before the ledger holds the outcome"
    assert kube.jobs(NS), "not marked, not deleted: the next pass retries"
    healthy = FlakyStore(tables, fail=lambda op, entity: False)
    second = reconcile(settings=settings, jobs=KubeJobs(cluster), send_event=sent.append, ledger=Ledger(healthy))
    assert second.succeeded == 1
    assert len(sent) == 1
    assert [w for w in healthy.writes if w[1] == "succeeded"] == [("replace", "succeeded")]
    assert kube.jobs(NS) == []
    record = ledger.get("rc-1")
    assert record is not None
    assert record.state == State.SUCCEEDED
    # The Job is gone; the ledger still absorbs a redelivery.
    again = dispatch(
        message({"id": "rc-1", "image": IMAGE, "command": ["sh", "-c", "echo x"]}),
        settings=settings,
        gate=Gate(cluster),
        requeue=lambda t, d: None,
        ledger=ledger,
    )
    assert again.outcome == Outcome.DUPLICATE
    assert kube.jobs(NS) == []


def test_a_kubernetes_create_whose_answer_was_lost_still_makes_one_job(
    settings: Settings, ledger: Ledger, cluster: Cluster, kube: KubeStandIn
) -> None:
    # The stand-in creates the Job, then drops the connection: the app sees a transient error.
    kube.fail_requests(method="POST", path_regex=r"/jobs$", drop=True, after=True, count=1)
    with pytest.raises(TransientError):
        dispatch(
            message({"id": "lost-1", "image": IMAGE}),
            settings=settings,
            gate=Gate(cluster),
            requeue=lambda t, d: None,
            ledger=ledger,
        )
    assert ledger.get("lost-1").state == State.RECEIVED  # type: ignore[union-attr]
    result = dispatch(
        message({"id": "lost-1", "image": IMAGE}),
        settings=settings,
        gate=Gate(cluster),
        requeue=lambda t, d: None,
        ledger=ledger,
    )
    assert result.outcome == Outcome.DUPLICATE
    assert ledger.get("lost-1").state == State.SUBMITTED  # type: ignore[union-attr]
    assert len(kube.jobs(NS)) == 1


def test_two_racing_instances_create_one_job_and_record_each_state_once(
    settings: Settings, cluster: Cluster, kube: KubeStandIn
) -> None:
    results: list[Outcome] = []
    stores: list[FlakyStore] = []
    barrier = threading.Barrier(2)

    def instance() -> None:
        store = FlakyStore(Tables(settings), fail=lambda op, entity: False)  # its own client
        stores.append(store)
        own = Cluster(from_kubeconfig_file(settings.kubeconfig or "", context=None, timeout=5), NS)
        barrier.wait()
        for _ in range(3):
            r = dispatch(
                message({"id": "race-1", "image": IMAGE}),
                settings=settings,
                gate=Gate(own),
                requeue=lambda t, d: None,
                ledger=Ledger(store),
            )
            results.append(r.outcome)

    threads = [threading.Thread(target=instance) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results).count(Outcome.CREATED) == 1
    assert len(results) == 6
    writes = [w for s in stores for w in s.writes]
    assert writes.count(("insert", "received")) == 1
    assert writes.count(("replace", "submitted")) == 1
    assert len(kube.jobs(NS)) == 1


def test_ledger_compare_and_swap_under_contention_keeps_every_first_time(settings: Settings) -> None:
    from shared.ledger.records import new_record

    now = datetime(2026, 11, 29, tzinfo=UTC)
    Ledger(Tables(settings)).create(new_record("cas-1", State.RECEIVED, now))
    order = [State.WAITING_FOR_CLUSTER, State.SUBMITTED, State.RUNNING, State.SUCCEEDED]
    barrier = threading.Barrier(4)

    def worker() -> None:
        own = Ledger(Tables(settings))
        barrier.wait()
        for i, state in enumerate(order):
            own.move("cas-1", state, now.replace(minute=i + 1))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    record = Ledger(Tables(settings)).get("cas-1")
    assert record is not None
    assert record.state == State.SUCCEEDED
    assert record.times["succeeded"] == "2026-11-29T00:04:00.000Z"
    assert set(record.times) == {"received", *(s.value for s in order)}


def test_the_ledger_never_holds_env_values(
    make_runner: Callable[..., LocalHost], queues: Queues, app_env: dict[str, str], azurite: Azurite
) -> None:
    queues.submit(
        {
            "id": "sec-1",
            "image": IMAGE,
            "command": ["sh", "-c", "echo $TOKEN; exit 3"],
            "env": {"TOKEN": SECRET},
            "correlationId": "c-sec",
        }
    )
    queues.submit({"id": "sec-2", "image": IMAGE, "env": {"TOKEN": SECRET}, "bogus": SECRET})
    log = EventLog(queues)
    with make_runner(VNB_KEEP_FINISHED_SECONDS="0") as runner:
        wait_for(lambda: len(log.poll()) >= 2, what="both outcomes")
        runner.run_until_idle()
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        app_env["VNB_LEDGER_TABLE"]
    )
    entities = list(
        table.list_entities()
    )  # every entity: the request records and the cluster's own (the follow-up lease)
    assert {e["key"] for e in entities if "key" in e} == {"sec-1", "sec-2"}
    dump = json.dumps([dict(e) for e in entities], default=str)
    assert SECRET not in dump
    assert "echo $TOKEN" not in dump  # nor the command


def test_retention_purges_old_records(settings: Settings, ledger: Ledger) -> None:
    from shared.ledger.records import new_record

    old = datetime(2020, 1, 1, tzinfo=UTC)
    ledger.create(new_record("old-1", State.SUCCEEDED, old))
    ledger.create(new_record("new-1", State.RECEIVED, datetime.now(UTC)))
    assert ledger.purge(datetime(2021, 1, 1, tzinfo=UTC)) == 1
    assert ledger.get("old-1") is None
    assert ledger.get("new-1") is not None


def test_a_poisoned_waiting_request_is_recorded_dead_lettered(
    settings: Settings, ledger: Ledger, cluster: Cluster
) -> None:
    from shared.flows.deadletter import deadletter

    body = {"id": "dl-1", "image": IMAGE, "correlationId": "c-dl"}
    requeued: list[str] = []
    dispatch(message(body), settings=settings, gate=Gate(None), requeue=lambda t, d: requeued.append(t), ledger=ledger)
    poisoned = Inbound(message_id="poison-1", body=requeued[0].encode(), dequeue_count=5)
    event = json.loads(deadletter(poisoned, settings=settings, now=datetime.now(UTC), ledger=ledger))
    assert event["data"]["requestKey"] == "dl-1"
    record = ledger.get("dl-1")
    assert record is not None
    assert record.state == State.DEADLETTERED
    assert record.reason == "MaxDequeueCountExceeded"
    # A late redelivery of the original message runs nothing.
    again = dispatch(message(body), settings=settings, gate=Gate(cluster), requeue=lambda t, d: None, ledger=ledger)
    assert again.outcome == Outcome.DUPLICATE


def test_a_second_job_for_a_finished_request_is_deleted_without_a_second_event(
    settings: Settings, ledger: Ledger, cluster: Cluster, kube: KubeStandIn
) -> None:
    """A duplicate that read the ledger before the first Job finished and created after it was
    deleted: dispatch deletes its Job when its ``submitted`` write finds the request finished,
    and the reconciler sends no event for it (its uid is not the recorded one)."""
    body = {"id": "stray-1", "image": IMAGE, "command": ["sh", "-c", "echo x"]}
    dispatch(message(body), settings=settings, gate=Gate(cluster), requeue=lambda t, d: None, ledger=ledger)
    wait_for(
        lambda: condition(kube.job(NS, job_name("stray-1", settings=settings)) or {}) == "Complete",
        what="the first Job",
    )
    sent: list[str] = []
    reconcile(settings=settings, jobs=KubeJobs(cluster), send_event=sent.append, ledger=ledger)
    assert len(sent) == 1
    assert kube.jobs(NS) == []
    # The race, replayed: the stray's ledger step starts from the record it read before the finish.
    stale = ledger.get("stray-1")
    assert stale is not None
    request = parse_request(body, settings=settings)
    meta = JobMeta(key="stray-1", message_id="m-2", enqueued_at=None)
    kube_job = cluster.create_job(build_job(request, meta, settings=settings))
    record = tracking.submitted(
        ledger, key="stray-1", job_name=job_name("stray-1", settings=settings), now=datetime.now(UTC), known=stale
    )
    assert record is not None
    assert record.state == State.SUCCEEDED, "the finished record is never moved back"
    wait_for(
        lambda: condition(kube.job(NS, job_name("stray-1", settings=settings)) or {}) == "Complete",
        what="the stray Job",
    )
    reconcile(settings=settings, jobs=KubeJobs(cluster), send_event=sent.append, ledger=ledger)
    assert len(sent) == 1, "no second outcome event for the stray Job"
    assert kube_job["metadata"]["uid"] != (record.outcome or {}).get("jobUid")
    assert kube.jobs(NS) == []


def test_an_entity_table_storage_refuses_is_a_permanent_error_not_a_retry(settings: Settings) -> None:
    """A 400 from Table storage (a property over 64 KiB here) can never succeed on retry: the
    adapter says so (EntityRefused, a PermanentError), so no message is retried into the poison
    queue for it (issue 20)."""
    from shared.adapters.tables import EntityRefused
    from shared.base.errors import PermanentError

    tables = Tables(settings)
    entity = {"PartitionKey": "too-big", "RowKey": "request", "key": "too-big", "state": "received", "x": "a" * 40_000}
    with pytest.raises(EntityRefused) as refused:
        tables.insert(entity)
    assert isinstance(refused.value, PermanentError)
    assert not isinstance(refused.value, TransientError)


def test_kept_cancel_events_are_found_by_table_storage_and_flushed_once(settings: Settings) -> None:
    """``Ledger.pending`` is a server-side filter on a property only records with a kept event
    have (Table storage leaves entities without it out): the sweep finds a cancel whose DELETE
    was cut short after its claim, sends it, and then finds nothing (issue 20)."""
    from datetime import timedelta

    from shared.ledger.outcome_writer import Ending, finish, flush
    from shared.ledger.records import new_record

    ledger = Ledger(Tables(settings))
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    for key in ("kept-1", "plain-1"):
        ledger.create(new_record(key, State.RECEIVED, now))
    text = json.dumps({"id": "e-kept-1", "type": "io.vnodebatch.request.cancelled"})
    ending = Ending(State.CANCELLED, event_id="e-kept-1", event_type="x", claimed_by="api", pending_event=text)
    claim = finish(ledger, "kept-1", ending, now, create=lambda: new_record("kept-1", State.CANCELLED, now))
    assert claim.owned
    later = now + timedelta(minutes=5)
    assert [r.key for r in ledger.pending(later)] == ["kept-1"]
    sent: list[str] = []
    assert flush(ledger, sent.append, later) == 1
    assert sent == [text]
    assert ledger.pending(later) == ()
    record = ledger.get("kept-1")
    assert record is not None
    assert (record.state, record.event_id, record.pending_event) == (State.CANCELLED, "e-kept-1", None)
