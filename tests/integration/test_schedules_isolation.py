"""One bad schedule never stops the timer from enqueueing the others (Azurite, the app's queue client)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.adapters.queues import Queues as AppQueues
from shared.config.settings import Settings
from shared.schedules.enqueue import enqueue_due
from tests.integration.conftest import Queues
from tests.integration.test_schedules import definitions, schedule, slot_ids

pytestmark = pytest.mark.integration


def test_a_never_firing_and_an_invalid_schedule_leave_the_others_enqueued(
    app_env: dict[str, str], queues: Queues, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feb31 = schedule("feb-31", "0 0 31 2 *")
    bad_zone = {**schedule("mars", "0 0 * * *"), "timeZone": "Mars/Olympus"}
    path = definitions(tmp_path, schedule("first", "0 0 * * *"), feb31, bad_zone, schedule("last", "0 * * * *"))
    settings = Settings.from_env({**app_env, "VNB_SCHEDULES_TIMER": "0 * * * * *", "VNB_SCHEDULES_FILE": str(path)})
    app_queues = AppQueues(settings)
    with caplog.at_level(logging.ERROR, logger="vnode_batch.schedule"):
        enqueue_due(
            settings=settings,
            now=datetime(2026, 11, 27, 0, 0, 1, tzinfo=UTC),
            last_run=None,
            past_due=False,
            send=app_queues.send,
        )
    assert sorted(slot_ids(queues)) == ["first-20261127T000000Z", "last-20261127T000000Z"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("(feb-31).cron" in e and "never fires" in e for e in errors), errors
    assert any("(mars).timeZone" in e for e in errors), errors
    assert json.loads(queues.requests.peek_messages(max_messages=1)[0].content)["image"]
