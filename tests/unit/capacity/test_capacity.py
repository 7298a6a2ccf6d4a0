"""Capacity arithmetic (pure): what a Job takes, what the app holds, what fits, who waits least."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.capacity.model import (
    Budget,
    Demand,
    Usage,
    aci_cores,
    attempt_of,
    capacity_refusal,
    capacity_retry,
    defer_delay,
    mark_attempt,
    may_need_retry,
    request_of,
    usage_of,
)
from shared.config.settings import Settings
from shared.intake.request import parse_request
from shared.job.render import JobMeta, build_job

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
QUOTA_MESSAGE = (
    "api call to https://management.azure.com/...: got HTTP response status code 409 error code "
    "\"ServiceUnavailable\": Resource type 'Microsoft.ContainerInstance/containerGroups' container group "
    "quota 'ContainerGroups' exceeded in region 'westeurope'. Limit: '100', Usage: '100' Requested: '1'."
)


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


def job(
    uid: str, *, cpu: str = "1", parallelism: int = 1, completions: int = 1, age: float = 10, **status: Any
) -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "name": uid, "creationTimestamp": ts(age)},
        "spec": {
            "parallelism": parallelism,
            "completions": completions,
            "template": {"spec": {"containers": [{"resources": {"requests": {"cpu": cpu}}}]}},
        },
        "status": dict(status),
    }


def pod(
    owner: str, phase: str, *, cpu: str = "1", age: float = 5, reason: str = "", message: str = ""
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if reason:
        status["reason"] = reason
        status["message"] = message
    if phase == "Running":
        status["containerStatuses"] = [{"name": "main", "state": {"running": {"startedAt": ts(age)}}}]
    return {
        "metadata": {
            "uid": f"{owner}-{phase}-{age}",
            "creationTimestamp": ts(age),
            "labels": {"batch.kubernetes.io/controller-uid": owner},
        },
        "spec": {"containers": [{"resources": {"requests": {"cpu": cpu}}}]},
        "status": status,
    }


@pytest.mark.parametrize(("cpu", "cores"), [("1", "1"), ("125m", "0.12"), ("0.333", "0.33"), ("2500m", "2.5")])
def test_cores_are_what_aci_receives_floored_to_a_hundredth(cpu: str, cores: str) -> None:
    assert aci_cores(cpu) == Decimal(cores)


def test_an_array_takes_all_its_parallel_pods_and_creates_one_group_per_completion(settings: Settings) -> None:
    request = parse_request(
        {"image": "mcr.microsoft.com/x:1", "cpu": "0.5", "completions": 10, "parallelism": 4}, settings=settings
    )
    manifest = build_job(request, JobMeta(key="k", message_id="m", enqueued_at=None), settings=settings)
    assert Demand.of_job(manifest) == Demand(groups=4, cores=Decimal("2.0"), creates=10)


def test_usage_counts_live_pods_not_refused_ones_and_pods_still_to_come() -> None:
    jobs = [
        job("a", cpu="2", active=1),
        job("b", parallelism=3, completions=3, age=1),  # just created: no pod yet
        job("c", age=7200, conditions=[{"type": "Complete", "status": "True"}]),
    ]
    pods = [
        pod("a", "Running", cpu="2"),
        pod("c", "Succeeded", age=4000),  # finished but not deleted: its group still exists
        pod("c", "Failed", reason="ProviderFailed", message=QUOTA_MESSAGE, age=4000),  # no group was made
    ]
    usage = usage_of(jobs, pods, now=NOW, windows=(300, 3600))
    assert usage.groups == 1 + 3 + 1
    assert usage.cores == Decimal(2 + 3 + 1)
    # Creates: a (1) and b (3) in both windows; c is older than the hour and its pods too.
    assert (usage.creates_short, usage.creates_long) == (4, 4)


def test_a_retried_pod_is_one_more_create() -> None:
    usage = usage_of([job("a", age=100, failed=2)], [], now=NOW, windows=(300, 3600))
    assert (usage.creates_short, usage.creates_long) == (3, 3)


def test_exhausted_names_the_resource_in_use_out_of_the_budget() -> None:
    budget = Budget(groups=100, cores=100, creates_short=100, creates_long=300)
    one = Demand(groups=1, cores=Decimal(1), creates=1)
    assert budget.exhausted(Usage(groups=99, cores=Decimal(99)), one) is None
    assert budget.exhausted(Usage(groups=100, cores=Decimal(50)), one) == (
        "100/100 container groups in use, this request needs 1"
    )
    assert (
        budget.exhausted(Usage(groups=10, cores=Decimal("99.5")), one) == "99.5/100 cores in use, this request needs 1"
    )
    assert budget.exhausted(Usage(creates_short=100, creates_long=100), one) == (
        "100/100 creates in the last 5 min, this request needs 1"
    )
    assert budget.exhausted(Usage(creates_short=0, creates_long=300), one) == (
        "300/300 creates in the last hour, this request needs 1"
    )


def test_a_shrunk_budget_says_so_and_still_admits_one_job_when_nothing_runs() -> None:
    budget = Budget(groups=100, cores=100, creates_short=100, creates_long=300, factor=0.25)
    one = Demand(groups=1, cores=Decimal(1), creates=1)
    reason = budget.exhausted(Usage(groups=25, cores=Decimal(25)), one)
    assert reason is not None
    assert "25/25 container groups in use" in reason
    assert "shrunk" in reason
    big = Demand(groups=40, cores=Decimal(40), creates=40)
    assert budget.exhausted(Usage(), big) is None


def test_a_job_larger_than_a_whole_quota_can_never_fit() -> None:
    budget = Budget(groups=100, cores=10, creates_short=100, creates_long=300)
    assert budget.too_big(Demand(groups=20, cores=Decimal(20), creates=20)) == (
        "needs 20 cores in parallel, more than VNB_CAPACITY_CORES=10"
    )
    assert budget.too_big(Demand(groups=2, cores=Decimal(2), creates=2)) is None


@pytest.mark.parametrize(
    ("message", "capacity"),
    [
        (QUOTA_MESSAGE, True),
        ("ServiceUnavailable: the requested resource is not available in the location 'westeurope'", True),
        ("RESPONSE 429: 429 Too Many Requests\nERROR CODE: TooManyRequests\nThe request is throttled", True),
        ("ERROR CODE: ContainerGroupQuotaReached\n... quota 'StandardCores' exceeded in region 'westus'", True),
        ("InvalidContainerGroupName: pod vnb-x-409ab-429cd refused", False),
        ("InvalidContainerGroupName: the name 'ns--x' is invalid", False),
        ("ContainerLimitGreaterThanContainerGroupTotalRequest", False),
    ],
)
def test_only_quota_capacity_and_throttling_refusals_are_retried(message: str, capacity: bool) -> None:
    refused = pod("a", "Failed", reason="ProviderFailed", message=message)
    assert (capacity_refusal(refused) is not None) is capacity
    assert (capacity_retry(job("a", failed=1), [refused]) is not None) is capacity


def test_a_job_whose_work_started_is_not_retried_for_capacity() -> None:
    refused = pod("a", "Failed", reason="ProviderFailed", message=QUOTA_MESSAGE)
    assert capacity_retry(job("a", failed=1), [refused, pod("a", "Running", age=3)]) is None
    assert capacity_retry(job("a", failed=1, succeeded=1), [refused]) is None


def test_a_refused_pod_still_uncounted_is_looked_at_too() -> None:
    # The Job controller lists a finished pod in uncountedTerminatedPods before it counts it in
    # `failed` (job_controller.go flushUncountedAndRemoveFinalizers): that pod failed all the same.
    uncounted = job("a", uncountedTerminatedPods={"failed": ["a-Failed-5"]})
    assert may_need_retry(uncounted)
    assert not may_need_retry(job("a", active=1))
    assert (
        capacity_retry(
            job("a", uncountedTerminatedPods={"succeeded": ["x"]}),
            [pod("a", "Failed", reason="ProviderFailed", message=QUOTA_MESSAGE)],
        )
        is None
    )


def test_the_request_and_its_attempt_travel_on_the_job() -> None:
    container = {"name": "main", "env": [{"name": "A", "value": "é$$1"}]}  # as render writes "é$1"
    manifest: dict[str, Any] = {
        "metadata": {"annotations": {}},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }
    mark_attempt(manifest, {"image": "mcr.microsoft.com/x:1", "env": {"A": "é$1"}}, 2)
    assert attempt_of(manifest) == 2
    assert "é" not in json.dumps(manifest["metadata"], ensure_ascii=False)  # env names only (issue 17)
    assert request_of(manifest) == {"image": "mcr.microsoft.com/x:1", "env": {"A": "é$1"}}
    assert attempt_of({"metadata": {}}) == 0
    assert request_of({"metadata": {}}) is None


def test_older_requests_come_back_sooner() -> None:
    waiting = [NOW - timedelta(seconds=s) for s in (100, 50, 10, 1)]
    delays = [defer_delay(t, waiting, longest=20) for t in waiting]
    assert delays == sorted(delays)
    assert delays[0] == 5
    assert delays[-1] <= 20


def test_a_full_create_window_says_when_it_frees_and_groups_do_not() -> None:
    budget = Budget(groups=100, cores=100, creates_short=100, creates_long=300)
    one = Demand(groups=1, cores=Decimal(1), creates=1)
    # 100 creates: 60 made 200 s ago, 40 made 10 s ago. The 5-minute window (counted 9 s longer)
    # frees its first slot when the oldest leave it.
    times = (NOW - timedelta(seconds=200),) * 60 + (NOW - timedelta(seconds=10),) * 40
    usage = Usage(groups=5, cores=Decimal(5), creates_short=100, creates_long=100, create_times=times)
    wait = budget.wait(usage, one, now=NOW)
    assert wait == pytest.approx(300 * 1.03 - 200)
    full = Usage(groups=100, cores=Decimal(100), creates_short=1, creates_long=1, create_times=times[:1])
    assert budget.wait(full, one, now=NOW) is None


def indexed_pod(index: int, phase: str, *, refused: bool = False, age: float = 5) -> dict[str, Any]:
    p = pod("a", phase, reason="ProviderFailed" if refused else "", message=QUOTA_MESSAGE if refused else "", age=age)
    p["metadata"]["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    if phase == "Succeeded":
        p["status"]["containerStatuses"] = [{"name": "main", "state": {"terminated": {"startedAt": ts(age)}}}]
    return p


def failed_array(failed_indexes: str) -> dict[str, Any]:
    j = job("a", completions=3, parallelism=3, failed=1, succeeded=2, failedIndexes=failed_indexes)
    j["spec"]["completionMode"] = "Indexed"
    j["status"]["conditions"] = [{"type": "Failed", "status": "True", "reason": "FailedIndexes"}]
    return j


def test_a_failed_array_whose_only_failures_are_refusals_runs_again() -> None:
    pods = [indexed_pod(0, "Succeeded"), indexed_pod(1, "Failed", refused=True), indexed_pod(2, "Succeeded")]
    assert capacity_retry(failed_array("1"), pods) is not None
    # While it runs, nothing is decided: its other indexes are still working.
    running = failed_array("1")
    running["status"]["conditions"] = []
    assert capacity_retry(running, pods) is None


def test_an_array_with_a_real_failure_is_not_retried() -> None:
    exited = indexed_pod(2, "Failed")
    exited["status"]["containerStatuses"] = [{"name": "main", "state": {"terminated": {"exitCode": 3}}}]
    pods = [indexed_pod(0, "Succeeded"), indexed_pod(1, "Failed", refused=True), exited]
    assert capacity_retry(failed_array("1,2"), pods) is None
