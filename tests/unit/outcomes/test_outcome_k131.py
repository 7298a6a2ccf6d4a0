"""Outcomes on the Job controller of Kubernetes 1.31+ (pure): ``FailureTarget`` /
``SuccessCriteriaMet`` are final, pods stuck Terminating on a virtual node that is down, and the
"no pod was created" verdict only for a Job that never had a pod.

Shapes from kubernetes ``pkg/controller/job/job_controller.go`` (``newFailureCondition``,
``enactJobFinished``) and ``pkg/controller/tainteviction/taint_eviction.go``
(``addConditionAndDeletePod``); see /work/shared/reference/kubernetes-jobs.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.job.read import terminal_condition
from shared.outcomes.outcome import outcome
from shared.outcomes.verdicts import NODE_DOWN, needs_pods, stuck_verdict
from tests.unit.outcomes.test_reconcile_outcome import NOW, T0, judge, make_job, make_pod, ts


def evicted(pod: dict[str, Any]) -> dict[str, Any]:
    """What the taint manager leaves on a pod of a node that stopped reporting: the condition,
    then a deletion nobody on the node confirms."""
    pod["metadata"]["deletionTimestamp"] = ts(150)
    pod["status"].setdefault("conditions", []).append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
        }
    )
    return pod


def test_failure_target_is_final_and_dates_the_end() -> None:
    job = make_job(
        conditions=[("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline")],
        status={"failed": 1, "terminating": 1},
    )
    terminating = make_pod("p-1", "Running")
    terminating["metadata"]["deletionTimestamp"] = ts(121)
    assert terminal_condition(job) is not None
    assert needs_pods(job, now=NOW, pending_timeout=60)
    data = judge(job, [terminating])
    assert (data["outcome"], data["reason"]) == ("failed", "DeadlineExceeded")
    assert data["finishedAt"] == ts(120)  # the FailureTarget's time, not "now"


def test_attempts_count_the_pods_still_uncounted() -> None:
    # Between the Job controller's two status updates a finished pod is listed by uid in
    # uncountedTerminatedPods, not yet in succeeded/failed: the event counts it all the same.
    cond = ("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    job = make_job(conditions=[cond], status={"failed": 1, "uncountedTerminatedPods": {"failed": ["u-2"]}})
    data = judge(job, [make_pod("p-1", "Failed", exit_code=3), make_pod("p-2", "Failed", exit_code=3)])
    assert data["attempts"] == {"succeeded": 0, "failed": 2}


def test_success_criteria_met_is_a_success_before_complete() -> None:
    job = make_job(conditions=[("SuccessCriteriaMet", "CompletionsReached", "Reached expected number")])
    data = judge(job, [make_pod("p-1", "Succeeded", exit_code=0)])
    assert (data["outcome"], data["reason"]) == ("succeeded", "Completed")
    assert data["finishedAt"] == ts(120)


def test_failed_after_failure_target_says_the_same() -> None:
    cond = ("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    before = judge(make_job(conditions=[cond], status={"failed": 2}), [make_pod("p", "Failed", exit_code=3)])
    after = judge(
        make_job(conditions=[cond, ("Failed", *cond[1:])], status={"failed": 2}),
        [make_pod("p", "Failed", exit_code=3)],
    )
    assert (before["reason"], before["message"], before["finishedAt"]) == (
        after["reason"],
        after["message"],
        after["finishedAt"],
    )


def test_pods_stuck_terminating_on_a_node_that_is_down_say_so() -> None:
    job = make_job(
        conditions=[("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit")],
        status={"failed": 1, "terminating": 1},
    )
    data = judge(job, [evicted(make_pod("p-1", "Running"))])
    assert data["reason"] == NODE_DOWN
    assert "p-1" in data["message"]
    assert "virtual-kubelet" in data["message"]
    assert "BackoffLimitExceeded" in data["message"]


def test_a_replacement_pending_on_a_node_that_is_down_is_judged_node_down() -> None:
    job = make_job(status={"failed": 1, "active": 1}, created=1)
    pending = make_pod(
        "p-2",
        "Pending",
        created=20,
        scheduled=("Unschedulable", "0/2 nodes are available: 1 node(s) had untolerated taint"),
    )
    verdict = stuck_verdict(job, [evicted(make_pod("p-1", "Running")), pending], now=NOW, pending_timeout=60)
    assert verdict is not None
    assert verdict.reason == NODE_DOWN


def test_no_pods_after_a_deadline_kill_is_not_pending_timeout() -> None:
    # The window between the last pod's removal and the controller's next sync: no pods, no
    # terminal condition, active 0 — but pods existed (failed counted).
    job = make_job(status={"failed": 1}, created=1)
    assert stuck_verdict(job, [], now=T0 + timedelta(seconds=500), pending_timeout=60) is None
    uncounted = make_job(status={"uncountedTerminatedPods": {"failed": ["u-1"]}}, created=1)
    assert stuck_verdict(uncounted, [], now=T0 + timedelta(seconds=500), pending_timeout=60) is None


def test_no_pod_ever_is_still_pending_timeout() -> None:
    job = make_job(status={}, created=1)
    verdict = stuck_verdict(job, [], now=T0 + timedelta(seconds=500), pending_timeout=60)
    assert verdict is not None
    assert verdict.reason == "PendingTimeout"


def test_outcome_raises_without_condition_or_verdict() -> None:
    job = make_job(status={"active": 1})
    try:
        outcome(job, [], verdict=None, now=NOW)
    except ValueError:
        return
    raise AssertionError("a running Job has no outcome")


def test_failures_of_pods_evicted_and_already_removed_are_node_down_too() -> None:
    # Reported after virtual-kubelet came back and deleted the evicted pod: nothing is stranded
    # any more, but the failure that decided the Job is a pod deleted while running, now gone.
    cond = ("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    data = judge(make_job(conditions=[cond], status={"failed": 1}), [])
    assert data["reason"] == NODE_DOWN
    assert "deleted before they finished" in data["message"]
    assert "BackoffLimitExceeded" in data["message"]


def test_a_failure_of_the_pods_own_or_a_deadline_keeps_the_kubernetes_reason() -> None:
    cond = ("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    own = judge(make_job(conditions=[cond], status={"failed": 1}), [make_pod("p-1", "Failed", exit_code=3)])
    assert own["reason"] == "BackoffLimitExceeded"
    # A deadline kill: the controller deletes the running pod after deciding; it is gone too.
    deadline = ("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline")
    assert judge(make_job(conditions=[deadline], status={"failed": 1}), [])["reason"] == "DeadlineExceeded"
