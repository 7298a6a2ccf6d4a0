"""A pod that ended is never also counted as a pod still to come (pure).

Between a pod's end and the Job controller's next status write (one ``syncJobBatchPeriod``, or
longer when that write fails), the pod is in none of ``succeeded``, ``failed``,
``uncountedTerminatedPods``, ``completedIndexes``: only its ``batch.kubernetes.io/job-tracking``
finalizer says it is not counted yet (kubernetes pkg/controller/job/job_controller.go
``getNewFinishedPods``, ``trackJobStatusAndRemoveFinalizers``; see ``shared.job.read.finished_pods``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.base.conventions import COMPLETION_INDEX, CONTROLLER_UID, JOB_TRACKING_FINALIZER
from shared.capacity.model import usage_of
from shared.job.read import finished_pods

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WINDOWS = (300, 3600)


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


def job(*, completions: int = 1, parallelism: int = 1, indexed: bool = False, **status: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "parallelism": parallelism,
        "completions": completions,
        "template": {"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}},
    }
    if indexed:
        spec["completionMode"] = "Indexed"
    return {"metadata": {"uid": "j", "name": "j", "creationTimestamp": ts(60)}, "spec": spec, "status": status}


def pod(uid: str, phase: str, *, tracked: bool, index: int | None = None) -> dict[str, Any]:
    """A pod of Job "j"; ``tracked``: it still has the job-tracking finalizer."""
    meta: dict[str, Any] = {
        "uid": uid,
        "creationTimestamp": ts(50),
        "labels": {CONTROLLER_UID: "j"},
        "finalizers": [JOB_TRACKING_FINALIZER] if tracked else [],
    }
    if index is not None:
        meta["annotations"] = {COMPLETION_INDEX: str(index)}
    return {
        "metadata": meta,
        "spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]},
        "status": {"phase": phase},
    }


def groups(j: dict[str, Any], pods: list[dict[str, Any]]) -> int:
    return usage_of([j], pods, now=NOW, windows=WINDOWS).groups


def test_a_one_pod_job_whose_pod_just_succeeded_holds_one_group_not_two() -> None:
    # The pod ended; the controller has not written uncountedTerminatedPods yet.
    assert groups(job(active=1), [pod("p1", "Succeeded", tracked=True)]) == 1


def test_the_same_pod_counts_once_at_every_step_of_the_controller() -> None:
    ended = pod("p1", "Succeeded", tracked=True)
    uncounted = job(uncountedTerminatedPods={"succeeded": ["p1"]})
    assert groups(uncounted, [ended]) == 1  # listed as uncounted, finalizer not yet removed
    released = pod("p1", "Succeeded", tracked=False)
    assert groups(uncounted, [released]) == 1  # finalizer removed, not yet moved to the counter
    assert groups(job(succeeded=1), [released]) == 1  # counted


def test_an_array_counts_the_pods_still_to_come_from_what_really_ended() -> None:
    # completions 5, parallelism 2: three counted, one just ended (not in the status yet), one runs.
    # One completion is left and it runs: no pod is still to come, five groups are held.
    pods = [pod(f"c{i}", "Succeeded", tracked=False) for i in range(3)]
    pods += [pod("new", "Succeeded", tracked=True), pod("run", "Running", tracked=True)]
    assert groups(job(completions=5, parallelism=2, succeeded=3, active=2), pods) == 5


def test_counted_pods_that_are_kept_are_not_counted_twice() -> None:
    # completions 4, parallelism 2: two counted and kept, one runs: one more pod is still to come.
    pods = [
        pod("c0", "Succeeded", tracked=False),
        pod("c1", "Succeeded", tracked=False),
        pod("run", "Running", tracked=True),
    ]
    assert groups(job(completions=4, parallelism=2, succeeded=2, active=1), pods) == 4


def test_an_indexed_job_counts_each_finished_index_once() -> None:
    j = job(completions=3, parallelism=3, indexed=True, succeeded=1, completedIndexes="0", active=2)
    pods = [
        pod("i0", "Succeeded", tracked=True, index=0),  # in completedIndexes, finalizer not yet removed
        pod("i1", "Succeeded", tracked=True, index=1),  # just ended: not in completedIndexes yet
        pod("i1b", "Succeeded", tracked=True, index=1),  # a second success of index 1 adds nothing
        pod("i2", "Running", tracked=True, index=2),
    ]
    assert finished_pods(j, pods)["succeeded"] == 2
    assert groups(j, pods) == 4  # the pods held; index 2 runs, nothing is still to come


def test_a_failed_pod_not_in_the_status_yet_is_one_more_create() -> None:
    j = job(active=1)
    pods = [pod("f1", "Failed", tracked=True), pod("retry", "Pending", tracked=True)]
    assert finished_pods(j, pods) == {"succeeded": 0, "failed": 1}
    usage = usage_of([j], pods, now=NOW, windows=WINDOWS)
    assert (usage.creates_short, usage.creates_long) == (2, 2)
    assert usage.groups == 2  # the failed pod's group and its replacement
    listed = job(uncountedTerminatedPods={"failed": ["f1"]})
    assert finished_pods(listed, pods) == {"succeeded": 0, "failed": 1}
