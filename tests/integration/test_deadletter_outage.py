"""The deadletter function during a ledger outage, over Azurite: it sends no outcome it cannot
record (a duplicate of the request could still create its Job) and parks the poisoned body in
the real poison queue, invisible for ``PARK_SECONDS``; once the ledger is back the copy ends the
request with one recorded event. (The interleavings are in tests/model/test_poison_outage.py.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.adapters.queues import queues_for
from shared.adapters.tables import Tables
from shared.config.settings import Settings
from shared.flows.deadletter import deadletter
from shared.flows.inbound import Inbound
from shared.flows.runtime import Runtime
from shared.ledger.records import State
from shared.ledger.store import Ledger
from tests.integration.conftest import Queues
from tests.integration.test_ledger import IMAGE, FlakyStore, Gate

pytestmark = pytest.mark.integration


def test_a_poisoned_request_waits_in_the_poison_queue_while_the_ledger_is_down(
    app_env: dict[str, str], queues: Queues
) -> None:
    settings = Settings.from_env(app_env)
    down = Ledger(FlakyStore(Tables(settings), fail=lambda op, entity: True))  # every write fails
    rt = Runtime(settings=settings, queues=queues_for(settings), gate=Gate(None))
    body = json.dumps({"id": "outage-1", "image": IMAGE, "correlationId": "c-out"}).encode()
    poisoned = Inbound(message_id="poison-1", body=body, dequeue_count=1, inserted_at=datetime.now(UTC))

    assert deadletter(poisoned, settings=settings, now=datetime.now(UTC), ledger=down, park=rt.park) is None
    assert queues.count(queues.poison) == 1  # parked ...
    assert list(queues.poison.receive_messages(max_messages=1)) == []  # ... and invisible for now
    assert queues.count(queues.events) == 0

    # The ledger is back: the next try claims, then sends (the host writes the returned event).
    up = Ledger(Tables(settings))
    text = deadletter(poisoned, settings=settings, now=datetime.now(UTC), ledger=up, park=rt.park)
    assert text is not None
    event = json.loads(text)
    record = up.get("outage-1")
    assert record is not None
    assert (record.state, record.event_id) == (State.DEADLETTERED, event["id"])
    assert event["data"]["requestKey"] == "outage-1"


def test_without_a_park_the_outage_is_raised_for_the_host_to_retry(app_env: dict[str, str]) -> None:
    from shared.base.errors import TransientError

    settings = Settings.from_env(app_env)
    down = Ledger(FlakyStore(Tables(settings), fail=lambda op, entity: True))
    body = json.dumps({"id": "outage-2", "image": IMAGE}).encode()
    with pytest.raises(TransientError):
        deadletter(Inbound("poison-2", body, 1), settings=settings, now=datetime.now(UTC), ledger=down)
