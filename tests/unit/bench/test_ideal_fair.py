"""The fair-share admission rule with no latency (``bench/ideal_fair.py`` driving
``shared.capacity.wake.choose``): what the rule itself gives on the fair-share benchmark's
workload, so a change to the rule that idles the quota or skews the shares fails here, in
seconds, rather than in a 25-minute benchmark."""

from __future__ import annotations

import pytest

from bench.fairshare import ALL_WAIT, BORROW, C_IDLE, IDLE_C_TARGETS, SHARES, caps_of, measure, plan
from bench.ideal_fair import simulate

STEP = 10.0


@pytest.mark.parametrize("borrow", [BORROW, 80])
def test_the_rule_alone_keeps_the_shares_and_idles_nothing_a_waiting_request_could_use(borrow: int) -> None:
    requests, urgent = plan(100, 1, teams_on=True)
    urgent_at = sum(r.cpu * r.seconds for r in requests) / 100 / 4  # a quarter into the run, as the bench
    sent, samples, _ = simulate(requests, urgent, urgent_at, teams_on=True, step=STEP, borrow=borrow)
    m = measure([*requests, urgent], sent, samples, step=STEP, caps=caps_of(borrow))
    for team, pct in m.shares(ALL_WAIT).items():
        assert abs(pct - SHARES[team]) <= 1.0, m.shares(ALL_WAIT)
    for team, pct in m.shares(C_IDLE).items():
        assert abs(pct - IDLE_C_TARGETS[team]) <= 1.0, m.shares(C_IDLE)
    # Idle while a waiting request would fit within its team's limit: the reservations' cost.
    assert m.idle_fits / m.busy <= 0.005
    assert m.used / (m.busy - m.beyond) >= 0.99
    # The urgent request (team b) starts before everything b sent earlier that still waited.
    waited_before = [r for r in requests if r.team == "b" and samples.started[r.key] > urgent_at]
    assert waited_before
    assert samples.started[urgent.key] <= min(samples.started[r.key] for r in waited_before)
