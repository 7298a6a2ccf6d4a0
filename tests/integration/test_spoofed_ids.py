"""A message that claims another request's id: its rejection names the message, never that
request, and the other request's ledger record and outcome stay its own (issue 19, finding 2)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from shared.adapters.tables import Tables
from shared.config.settings import Settings
from shared.ledger.records import State
from shared.ledger.store import Ledger
from tests.conftest import job_name_for, wait_for
from tests.integration.conftest import Queues
from tests.integration.test_dispatch import NS, condition

pytestmark = pytest.mark.integration

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"


def test_a_message_claiming_another_requests_id_is_rejected_as_itself(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn, app_env: dict[str, str]
) -> None:
    victim = queues.submit({"id": "order-9", "image": IMAGE, "command": ["sh", "-c", "echo real"]})
    with make_runner(VNB_RECONCILE_SCHEDULE="0 0 0 1 1 *") as runner:
        runner.run_until_idle()
        other = queues.submit({"id": "order-9", "image": IMAGE, "command": ["sh", "-c", "echo fake"]})
        invalid = queues.submit({"id": "order-9", "image": IMAGE, "cpu": "lots"})
        runner.run_until_idle()
        done = wait_for(lambda: condition(kube.job(NS, job_name_for("order-9")) or {}), what="the real Job to finish")
        assert done == "Complete"
        assert runner.fire_timer("reconcile") == "succeeded"
    events = queues.drain_events()
    about_victim = [(e["type"], e["data"].get("requestKey")) for e in events if e["subject"] == "order-9"]
    assert about_victim == [("io.vnodebatch.job.succeeded", "order-9")]
    rejected = {e["data"]["messageId"]: e for e in events if e["type"] == "io.vnodebatch.request.rejected"}
    assert set(rejected) == {other, invalid}
    assert rejected[other]["data"]["reason"] == "IdReused"
    assert rejected[invalid]["data"]["reason"] == "InvalidRequest"
    for message_id, event in rejected.items():
        assert event["subject"] == message_id
        assert event["data"]["requestKey"] is None
        assert event["data"]["claimedKey"] == "order-9"
    record = Ledger(Tables(Settings.from_env(app_env))).get("order-9")
    assert record is not None
    assert (record.state, record.message_id, record.errors) == (State.SUCCEEDED, victim, ())
