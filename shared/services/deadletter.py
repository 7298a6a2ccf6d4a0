"""Dead-letter: every poisoned request message becomes one ``request.deadlettered`` event."""

from __future__ import annotations

import logging
from datetime import datetime

from shared import events
from shared.deferral import unwrap
from shared.errors import VnbError
from shared.request import decode_body
from shared.services import tracking
from shared.services.dispatch import Inbound
from shared.services.ledger import Ledger
from shared.settings import Settings

log = logging.getLogger("vnode_batch.deadletter")


def deadletter(message: Inbound, *, settings: Settings, now: datetime, ledger: Ledger | None = None) -> str:
    """The event for a message the host moved to ``<requests>-poison``.

    The body is kept as it was; the key and correlation id are recovered when the body is
    a readable request, so consumers can match the event to what they sent.
    """
    key = correlation_id = None
    data, _ = decode_body(message.body)
    if data is not None:
        data, deferral = unwrap(data)
        raw_id, raw_cid = data.get("id"), data.get("correlationId")
        key = raw_id if isinstance(raw_id, str) else (deferral.key if deferral else None)
        correlation_id = raw_cid if isinstance(raw_cid, str) else None
    detail = (
        f"the dispatch function failed on each of its deliveries (dequeue count {message.dequeue_count}); "
        "the host moved it to the poison queue. Its exceptions are in the function logs "
        "(Application Insights) under this message id."
    )
    if ledger is not None and key:  # ledger: ends a waiting request; a submitted one is the reconciler's
        try:
            tracking.deadlettered(
                ledger,
                key=key,
                reason="MaxDequeueCountExceeded",
                correlation_id=correlation_id,
                message_id=message.message_id,
                now=now,
            )
        except VnbError as e:
            # The event is the contract; failing here would send this message to a second
            # poison queue nobody reads. The record stays as it was until retention purges it.
            log.warning(
                "message %s (key %s): recording dead-lettered in the ledger failed: %s", message.message_id, key, e
            )
    log.error("message %s (key %s) was poisoned after %d deliveries", message.message_id, key, message.dequeue_count)
    return events.request_deadlettered(
        source=settings.event_source,
        message_id=message.message_id,
        body=message.body,
        dequeue_count=message.dequeue_count,
        now=now,
        reason="MaxDequeueCountExceeded",
        detail=detail,
        queue=settings.poison_queue,
        key=key,
        correlation_id=correlation_id,
        inserted_at=message.inserted_at,
    )
