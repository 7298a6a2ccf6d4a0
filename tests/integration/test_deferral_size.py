"""Deferral size against a real Azurite: the queue's 64 KiB limit is Azurite's, not ours."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.adapters.queues import QueueSendError, queues_for
from shared.config.settings import settings_from
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound, Outcome
from shared.intake.deferral import BUDGET, QUEUE_MESSAGE_LIMIT, encoded_size, room, unwrap
from tests.integration.conftest import Queues
from tests.unit.intake.test_deferral_size import NeverAsked, NotReady, request_of

pytestmark = pytest.mark.integration


def receive(queues: Queues) -> Inbound:
    [message] = list(queues.requests.receive_messages(max_messages=1, visibility_timeout=30))
    queues.requests.delete_message(message)
    return Inbound(message_id=message.id, body=str(message.content).encode(), inserted_at=message.inserted_on)


def test_the_queue_refuses_one_byte_over_64_kib(app_env: dict[str, str], queues: Queues) -> None:
    adapter = queues_for(settings_from(app_env))
    adapter.send(adapter_queue := app_env["VNB_REQUESTS_QUEUE"], "x" * QUEUE_MESSAGE_LIMIT)
    with pytest.raises(QueueSendError):
        adapter.send(adapter_queue, "x" * (QUEUE_MESSAGE_LIMIT + 1))


def test_the_largest_waitable_request_waits_in_azurite_and_a_larger_one_is_refused(
    app_env: dict[str, str], queues: Queues
) -> None:
    settings = settings_from(app_env)
    adapter = queues_for(settings)

    def requeue(text: str, delay: int) -> None:
        adapter.send(settings.requests_queue, text, visibility_timeout=0)

    message_id = "0b6a4f6e-1f0e-4c55-9a52-1f7a8c3b2d41"  # the GUID shape of Azurite's ids
    largest = 1000 + room(request_of(1000), key="big-1", message_id=message_id)
    data = request_of(largest)
    queues.submit(json.dumps(data, separators=(",", ":")))
    for _ in (1, 2):
        inbound = receive(queues)
        result = dispatch(
            inbound, settings=settings, gate=NotReady("x" * 5000), requeue=requeue, now=lambda: datetime.now(UTC)
        )
        assert result.outcome is Outcome.DEFERRED  # Azurite took the wrapped message
        assert queues.count(queues.requests) == 1
    waited = receive(queues)
    assert encoded_size(waited.body.decode()) <= BUDGET
    request, deferral = unwrap(json.loads(waited.body))
    assert request == data
    assert deferral is not None
    assert deferral.count == 2

    # The reported case: ~65,400 bytes fit the queue alone, not with the envelope.
    queues.submit(json.dumps(request_of(65_400), separators=(",", ":")))
    result = dispatch(receive(queues), settings=settings, gate=NeverAsked(), requeue=requeue)
    assert result.outcome is Outcome.REJECTED
    assert json.loads(result.events[0])["data"]["errors"][0]["field"] == "$body"
    assert queues.count(queues.requests) == 0
