"""The create windows (pure): what the app counts never lets through a create ACI's real windows
would refuse, given the modelled lag; and the lag allowance is paid once per window, not 3 %.

The model: the app admits at ``now`` and creates the Job then or a little later (the POST); the
API server stamps ``creationTimestamp`` in whole seconds; ACI counts each of the Job's container
groups when the virtual kubelet creates it, up to the lag allowance after the Job's creation, and
refuses a create when its 5-minute or hourly window (ACI's, sliding, ``t > now - window`` like
``devtools/standins/virtual_node/quotas.py``) already holds the quota.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.capacity.model import CREATE_LAG_SECONDS, Budget, Demand, Usage, lag_allowance, usage_of

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
WINDOWS = (30, 120)
"""Short windows (like bench/capacity.py's time-scaled ones), so that whole-second timestamps and
the lag are large next to them and a short plan reaches the edge of both windows many times."""
LAG = lag_allowance(WINDOWS).total_seconds()


@dataclass(frozen=True)
class Step:
    gap: float  # seconds since the previous request came
    creates: int  # completions (all in parallel)
    retry: float  # a deferred request asks again this long after the window frees (Budget.wait)
    post: float  # seconds from admission to the Job's creation
    lags: tuple[float, ...]  # per container group: ACI's count after the Job's creation


def _stamp(at: float) -> str:
    """metav1.Time: whole seconds, truncated (as the API server writes it)."""
    return (T0 + timedelta(seconds=math.floor(at))).isoformat().replace("+00:00", "Z")


def _job(name: str, created: float, creates: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": name, "creationTimestamp": _stamp(created)},
        "spec": {"completions": creates, "parallelism": creates, "template": {"spec": {"containers": []}}},
        "status": {},
    }


def run(steps: list[Step], *, short: int, long: int) -> tuple[list[float], int]:
    """Admit each request as the app would (its Jobs listed, creationTimestamp in whole seconds);
    return ACI's count times of the creates admitted and how many ACI's windows refuse."""
    budget = Budget(groups=10_000, cores=10_000, creates_short=short, creates_long=long, windows=WINDOWS)
    jobs: list[dict[str, Any]] = []
    counted: list[float] = []
    now = 0.0
    for i, step in enumerate(steps):
        now += step.gap
        demand = Demand(groups=step.creates, cores=Decimal(0), creates=step.creates)
        for _ in range(100):  # deferred, it comes back when the window frees, as early as it may
            usage = usage_of(jobs, [], now=T0 + timedelta(seconds=now), windows=WINDOWS)
            if budget.exhausted(usage, demand) is None:
                break
            wait = budget.wait(usage, demand, now=T0 + timedelta(seconds=now))
            assert wait, "a full create window says when it frees"
            now += wait + step.retry
        else:
            raise AssertionError("a request never fitted")
        created = now + step.post
        jobs.append(_job(f"j{i}", created, step.creates))
        counted.extend(created + lag for lag in step.lags[: step.creates])
    return counted, aci_refusals(counted, short=short, long=long)


def aci_refusals(times: list[float], *, short: int, long: int) -> int:
    """ACI's sliding windows over its count times, in the order it counts them."""
    accepted: list[float] = []
    refused = 0
    for t in sorted(times):
        in_short = sum(1 for a in accepted if a > t - WINDOWS[0])
        in_long = sum(1 for a in accepted if a > t - WINDOWS[1])
        if in_short >= short or in_long >= long:
            refused += 1
        else:
            accepted.append(t)
    return refused


def steps(max_lag: float) -> st.SearchStrategy[list[Step]]:
    step = st.builds(
        Step,
        gap=st.one_of(st.floats(0, 3), st.floats(0, 150), st.sampled_from([0.0, 0.999, 1.0, 29.5, 30.0])),
        creates=st.integers(1, 3),
        retry=st.one_of(st.just(0.0), st.floats(0.001, 1.5)),
        # Late in its second: its creationTimestamp says up to a second earlier than it was.
        post=st.one_of(st.sampled_from([0.0, 0.5, 0.99, 0.999]), st.floats(0, 2)),
        lags=st.lists(st.one_of(st.just(max_lag), st.floats(0, max_lag)), min_size=3, max_size=3).map(tuple),
    )
    return st.lists(step, min_size=1, max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps(LAG), st.sampled_from([(3, 6), (5, 12), (4, 4)]))
def test_the_app_never_admits_a_create_that_aci_would_refuse(plan: list[Step], quotas: tuple[int, int]) -> None:
    short, long = quotas
    counted, refused = run(plan, short=short, long=long)
    assert refused == 0, f"{refused} of {len(counted)} creates refused"


def test_a_lag_beyond_the_allowance_can_be_refused() -> None:
    # The property above has teeth: the same rule with a lag longer than it allows is refused.
    # Three creates at 0 counted by ACI 3 s late; at 32.5 s the app sees the window free (the
    # first ones were stamped 0 s, counted until 30 + 0.9 + 1 s) while ACI still holds them.
    late = (3.0, 3.0, 3.0)
    plan = [Step(0, 3, 0.0, 0.0, late), Step(32.5, 1, 0.0, 0.0, (0.0,) * 3)]
    counted, refused = run(plan, short=3, long=100)
    assert len(counted) == 4
    assert refused == 1


def test_the_allowance_is_a_lag_not_a_share_of_the_window() -> None:
    assert lag_allowance((300, 3600)) == timedelta(seconds=CREATE_LAG_SECONDS)
    assert lag_allowance((3, 36)) == timedelta(seconds=CREATE_LAG_SECONDS / 100)  # time-scaled runs
    budget = Budget(groups=100, cores=100, creates_short=100, creates_long=3)
    one = Demand(groups=1, cores=Decimal(1), creates=1)
    made = (T0,) * 3
    usage = Usage(groups=0, cores=Decimal(0), creates_short=0, creates_long=3, create_times=made)
    now = T0 + timedelta(seconds=3000)
    # The hourly window frees 9 s after ACI's (not 108 s: 3 % of the hour).
    assert budget.wait(usage, one, now=now) == pytest.approx(3600 + CREATE_LAG_SECONDS - 3000)


@pytest.mark.parametrize(
    ("age", "in_long"),
    [(3600 + CREATE_LAG_SECONDS - 0.5, 1), (3600 + CREATE_LAG_SECONDS + 1.5, 0)],
    ids=["inside the allowance", "past it"],
)
def test_a_job_counts_in_the_hour_until_the_allowance_has_passed(age: float, in_long: int) -> None:
    now = 10_000.0
    usage = usage_of([_job("a", now - age, 1)], [], now=T0 + timedelta(seconds=now), windows=(300, 3600))
    assert usage.creates_long == in_long
