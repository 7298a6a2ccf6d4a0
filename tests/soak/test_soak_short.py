"""The short soak: 200 messages through dispatch, deadletter and reconcile while the stand-in
injects 5xx, slow and dropped calls, ACI's quota is exhausted and creates are throttled or
refused for capacity, both Azurite and the stand-in restart mid-run, and virtual-kubelet stops for
400 simulated seconds (its pods evicted and stranded Terminating until it is back).

Asserts the ledger only (no timing): every request ended in exactly one terminal event, no
Job was created twice (beyond capacity retries), no capacity refusal was reported as a failure, no message was left behind. ``bench/soak.py`` is the long version.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bench.soak import run_soak

pytestmark = [pytest.mark.soak, pytest.mark.integration]


def test_nothing_lost_nothing_doubled_under_faults(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="devtools")  # polls fail while Azurite restarts: expected
    ledger = run_soak(200, seed=7, timeout=120, workdir=tmp_path, progress=False)
    report = ledger.report()
    assert ledger.requests == 180, report
    assert ledger.duplicates_sent == 20, report
    assert not ledger.lost, report
    assert not ledger.duplicated_outcomes, report
    assert not ledger.duplicated_jobs, report
    assert not ledger.capacity_failures, report
    assert not ledger.wrong, report  # an ordinary request may fail only if its Job met the outage
    assert ledger.exposed, report  # the outage happened with Jobs in flight
    assert not ledger.unexpected, report
    assert not any(ledger.left_in_queues.values()), report
    assert ledger.count("request.rejected") == 20, report
