"""``cli cost`` end to end: requests run through the app (local runner, Azurite, the Kubernetes
stand-in), their costs land in the ledger with their events, and the report adds them up."""

from __future__ import annotations

import argparse
import io
import json
import uuid
from collections.abc import Callable

import pytest

from devtools.runner import LocalRunner
from shared.cli import cost as cli_cost
from shared.config.settings import Settings
from tests.conftest import wait_for
from tests.integration.conftest import Queues
from tests.integration.test_reconcile import EventLog

pytestmark = pytest.mark.integration

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"


def test_cost_report_adds_up_the_events_by_label_and_day(
    make_runner: Callable[..., LocalRunner], queues: Queues, app_env: dict[str, str]
) -> None:
    table = "cost" + uuid.uuid4().hex[:10]
    for key, team, cmd in (
        ("c-1", "data", "sleep 1; echo one"),
        ("c-2", "data", "sleep 2; echo two"),
        ("c-3", "ml", "fail-once; sleep 1; echo three"),
    ):
        queues.submit(
            {"id": key, "image": IMAGE, "command": ["sh", "-c", cmd], "labels": {"team": team}, "retries": 2}
        )
    log = EventLog(queues)
    with make_runner(VNB_LEDGER_TABLE=table):
        wait_for(lambda: len(log.poll()) >= 3, what="three completion events")
    by_key = {e["data"]["requestKey"]: e["data"]["cost"] for e in log.events}
    assert by_key["c-3"]["failedAttempts"]["count"] == 1

    settings = Settings.from_env({**app_env, "VNB_LEDGER_TABLE": table})
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(by="team", since="1d", csv=False, json=True)
    assert cli_cost.run(args, settings, out, err) == 0
    rows = {r["group"]: r for r in json.loads(out.getvalue())["rows"]}
    assert set(rows) == {"data", "ml"}
    assert rows["data"]["jobs"] == 2
    assert rows["data"]["amount"] == pytest.approx(by_key["c-1"]["amount"] + by_key["c-2"]["amount"], abs=1e-8)
    assert rows["ml"]["amount"] == pytest.approx(by_key["c-3"]["amount"], abs=1e-8)
    assert rows["ml"]["failedAttemptsAmount"] == pytest.approx(by_key["c-3"]["failedAttempts"]["amount"], abs=1e-8)

    out = io.StringIO()
    assert cli_cost.run(argparse.Namespace(by="day", since="1d", csv=False, json=False), settings, out, err) == 0
    text = out.getvalue()
    assert "cost by day" in text
    assert "total" in text
    assert "USD" in text
    out = io.StringIO()
    assert cli_cost.run(argparse.Namespace(by="day", since="1d", csv=True, json=False), settings, out, err) == 0
    [header, row] = out.getvalue().splitlines()
    assert header.startswith("day,currency,jobs,amount")
    assert row.split(",")[2] == "3"

    assert cli_cost.run(argparse.Namespace(by="day", since="soon", csv=False, json=False), settings, out, err) == 2
    assert "--since 'soon'" in err.getvalue()
