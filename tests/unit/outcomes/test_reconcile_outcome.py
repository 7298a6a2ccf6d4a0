"""Job + pods → outcome, verdicts and event data (pure, table-driven, no cluster).

The objects below have the shape kube-apiserver 1.33 returns (and the stand-in copies).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.base.conventions import ANN_VERDICT
from shared.base.times import iso
from shared.cost.pricing import job_cost
from shared.outcomes import events
from shared.outcomes.outcome import MAX_LOG_PODS, LogTail, cut_tail, event_data, outcome
from shared.outcomes.verdicts import Verdict, lost_verdict, needs_pods, stuck_verdict
from tests.unit.cost.test_cost import PRICES
from tests.unit.flows.test_reconcile_events import validate_event

T0 = datetime(2026, 11, 27, 1, 0, 0, tzinfo=UTC)


def ts(seconds: float) -> str:
    return iso(T0 + timedelta(seconds=seconds))


def make_job(
    *,
    conditions: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    indexed: int = 0,
    status: dict[str, Any] | None = None,
    created: float = 1,
    deleting: bool = False,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    ann = {
        "vnode-batch.io/key": "order-42",
        "vnode-batch.io/message-id": "m-1",
        "vnode-batch.io/correlation-id": "c-1",
        "vnode-batch.io/enqueued-at": ts(0),
        **(annotations or {}),
    }
    meta: dict[str, Any] = {
        "name": "vnb-order-42-0123456789",
        "namespace": "vnode-batch",
        "uid": "11111111-2222-4333-8444-555555555555",
        "resourceVersion": "42",
        "creationTimestamp": ts(created),
        "labels": {"app.kubernetes.io/managed-by": "vnode-batch", "vnode-batch.io/state": "unreported"},
        "annotations": ann,
        "finalizers": ["vnode-batch.io/report"],
    }
    if deleting:
        meta["deletionTimestamp"] = ts(500)
    spec: dict[str, Any] = {"completions": indexed or 1, "parallelism": 1}
    if indexed:
        spec["completionMode"] = "Indexed"
    conds = [
        {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": ts(120)}
        for t, r, m in conditions
    ]
    st_: dict[str, Any] = {"startTime": ts(2), "conditions": conds, **(status or {})}
    if any(c["type"] == "Complete" for c in conds):
        st_.setdefault("completionTime", ts(100))
    return {"metadata": meta, "spec": spec, "status": st_}


def make_pod(
    name: str,
    phase: str,
    *,
    exit_code: int | None = None,
    started: float = 30,
    finished: float = 90,
    index: int | None = None,
    waiting: tuple[str, str] | None = None,
    reason: str | None = None,
    message: str | None = None,
    created: float = 5,
    scheduled: tuple[str, str] | None = None,
) -> dict[str, Any]:
    state: dict[str, Any]
    if waiting is not None:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    elif exit_code is not None:
        state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": ts(started),
                "finishedAt": ts(finished),
            }
        }
    elif phase == "Running":
        state = {"running": {"startedAt": ts(started)}}
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    meta: dict[str, Any] = {
        "name": name,
        "creationTimestamp": ts(created),
        "labels": {"batch.kubernetes.io/controller-uid": "11111111-2222-4333-8444-555555555555"},
    }
    if index is not None:
        meta["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    status: dict[str, Any] = {"phase": phase, "containerStatuses": [{"name": "main", "state": state}]}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if scheduled:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "False", "reason": scheduled[0], "message": scheduled[1]}
        ]
    return {"metadata": meta, "spec": {"nodeName": "virtual-node-aci-linux"}, "status": status}


NOW = T0 + timedelta(seconds=200)


def judge(job: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The event data the reconciler would send (with a fake log per chosen pod), validated."""
    result = outcome(job, pods, verdict=Verdict.of(job), now=NOW)
    logs = [LogTail(s.pod, s.container, s.index, f"log of {s.pod}\n", False) for s in result.log_sources]
    data = event_data(job, result, logs)
    data["cost"] = job_cost(pods, prices=PRICES, until=result.finished_at)  # as the reconciler adds it
    build = events.job_succeeded if result.succeeded else events.job_failed
    text = build(
        source="/vnode-batch", job_uid="u", subject=data["requestKey"], finished_at=result.finished_at, data=data
    )
    validated: dict[str, Any] = validate_event(text)["data"]
    return validated


def test_success_with_timestamps_and_durations() -> None:
    job = make_job(conditions=[("Complete", "CompletionsReached", "Reached expected number of succeeded pods")])
    job["status"]["succeeded"] = 1
    data = judge(job, [make_pod("p-ok", "Succeeded", exit_code=0, started=30, finished=90)])
    assert data["outcome"] == "succeeded"
    assert data["reason"] == "Completed"
    assert data["exitCode"] == 0
    assert data["startedAt"] == ts(30)  # the container start, not the Job's startTime
    assert data["finishedAt"] == ts(100)  # status.completionTime
    assert data["durationSeconds"] == 70
    assert data["queueToStartSeconds"] == 30
    assert data["enqueuedAt"] == ts(0)
    assert data["createdAt"] == ts(1)
    assert data["attempts"] == {"succeeded": 1, "failed": 0}
    assert data["indexes"] is None
    assert [t["pod"] for t in data["logTail"]] == ["p-ok"]
    assert (data["requestKey"], data["correlationId"], data["messageId"]) == ("order-42", "c-1", "m-1")


def test_exit_code_failure_after_retries() -> None:
    job = make_job(conditions=[("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")])
    job["status"]["failed"] = 2
    pods = [
        make_pod("p-1", "Failed", exit_code=3, started=10, finished=20),
        make_pod("p-2", "Failed", exit_code=4, started=30, finished=40),
    ]
    data = judge(job, pods)
    assert (data["outcome"], data["reason"], data["exitCode"]) == ("failed", "BackoffLimitExceeded", 4)
    assert "last failed pod p-2 exited with code 4" in data["message"]
    assert data["attempts"] == {"succeeded": 0, "failed": 2}
    assert [t["pod"] for t in data["logTail"]] == ["p-2", "p-1"]
    assert data["finishedAt"] == ts(120)  # the Failed condition's lastTransitionTime


def test_deadline_exceeded_keeps_its_reason() -> None:
    job = make_job(conditions=[("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")])
    data = judge(job, [])
    assert data["reason"] == "DeadlineExceeded"
    assert data["exitCode"] is None
    assert data["logTail"] == []


def test_provider_failed_pod_names_the_cause() -> None:
    job = make_job(conditions=[("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")])
    pod = make_pod(
        "p-aci",
        "Failed",
        waiting=("ProviderFailed", ""),
        reason="ProviderFailed",
        message="api call to https://management.azure.com/...: got HTTP response status code 503",
    )
    data = judge(job, [pod])
    assert data["reason"] == "ProviderFailed"
    assert "status code 503" in data["message"]
    assert data["exitCode"] is None


def test_indexed_job_with_one_failed_index() -> None:
    job = make_job(
        indexed=5,
        conditions=[("Failed", "FailedIndexes", "Job has failed indexes")],
        status={"completedIndexes": "0-2,4", "failedIndexes": "3", "succeeded": 4, "failed": 2},
    )
    pods = [make_pod(f"p-{i}", "Succeeded", exit_code=0, index=i, finished=50 + i) for i in (0, 1, 2, 4)]
    pods += [
        make_pod("p-3a", "Failed", exit_code=7, index=3, finished=40),
        make_pod("p-3b", "Failed", exit_code=7, index=3, finished=60),
    ]
    data = judge(job, pods)
    assert data["reason"] == "FailedIndexes"
    assert data["indexes"] == {"completions": 5, "succeeded": "0-2,4", "failed": "3"}
    assert data["exitCode"] == 7
    assert "failed indexes: 3" in data["message"]
    tails = data["logTail"]
    assert tails[0] == {"pod": "p-3b", "container": "main", "index": 3, "text": "log of p-3b\n", "truncated": False}
    assert len(tails) <= MAX_LOG_PODS
    assert [t["index"] for t in tails].count(3) == 1  # one attempt per index: the latest


@pytest.mark.parametrize(
    ("pod", "reason", "says"),
    [
        (
            make_pod("p", "Pending", waiting=("ErrImagePull", "failed to pull and unpack image")),
            "ErrImagePull",
            "failed to pull",
        ),
        (
            make_pod("p", "Pending", waiting=("ImagePullBackOff", 'Back-off pulling image "x"')),
            "ImagePullBackOff",
            "Back-off",
        ),
        (
            make_pod(
                "p", "Pending", waiting=("ContainerCreating", "insufficient capacity"), message="insufficient capacity"
            ),
            "PendingTimeout",
            "insufficient capacity",
        ),
        (
            make_pod("p", "Pending", scheduled=("Unschedulable", "0/2 nodes are available: 1 Insufficient cpu")),
            "PendingTimeout",
            "0/2 nodes are available",
        ),
        (make_pod("p", "Pending", reason="ProviderFailed", message="ACI 503"), "ProviderFailed", "ACI 503"),
    ],
)
def test_stuck_pending_pod_fails_the_job_with_its_cause(pod: dict[str, Any], reason: str, says: str) -> None:
    job = make_job(status={"active": 1, "ready": 0})
    assert needs_pods(job, now=NOW, pending_timeout=60)
    verdict = stuck_verdict(job, [pod], now=NOW, pending_timeout=60)
    assert verdict is not None
    assert verdict.reason == reason
    assert says in verdict.message
    assert "Pending for 195 s (VNB_PENDING_TIMEOUT_SECONDS=60)" in verdict.message
    job["metadata"]["annotations"][ANN_VERDICT] = verdict.annotation()
    data = judge(job, [pod])
    assert (data["outcome"], data["reason"], data["finishedAt"]) == ("failed", reason, iso(NOW))


def test_not_stuck_before_the_timeout_or_while_running() -> None:
    young = make_job(status={"active": 1, "ready": 0}, created=150)
    assert not needs_pods(young, now=NOW, pending_timeout=60)
    running = make_job(status={"active": 1, "ready": 1})
    assert not needs_pods(running, now=NOW, pending_timeout=60)
    job = make_job(status={"active": 2, "ready": 1})
    pods = [make_pod("run", "Running"), make_pod("wait", "Pending", created=180)]
    assert needs_pods(job, now=NOW, pending_timeout=60)
    assert stuck_verdict(job, pods, now=NOW, pending_timeout=60) is None  # the pending pod is young


def test_job_without_any_pod_for_too_long() -> None:
    job = make_job(status={})
    verdict = stuck_verdict(job, [], now=NOW, pending_timeout=60)
    assert verdict is not None
    assert verdict.reason == "PendingTimeout"
    assert "no pod was created" in verdict.message


def test_lost_job_and_the_verdict_round_trip() -> None:
    job = make_job(status={"active": 1, "ready": 1}, deleting=True)
    assert needs_pods(job, now=NOW, pending_timeout=900)
    verdict = lost_verdict(job, now=NOW)
    assert Verdict.of({"metadata": {"annotations": {ANN_VERDICT: verdict.annotation()}}}) == verdict
    job["metadata"]["annotations"][ANN_VERDICT] = verdict.annotation()
    data = judge(job, [make_pod("p", "Running")])
    assert data["reason"] == "Lost"
    assert [t["pod"] for t in data["logTail"]] == ["p"]  # read while the pod still exists


def test_a_finished_job_deleted_by_someone_reports_its_real_outcome() -> None:
    job = make_job(conditions=[("Complete", "CompletionsReached", "done")], deleting=True)
    assert judge(job, [])["outcome"] == "succeeded"


def test_verdict_wins_over_a_later_terminal_condition() -> None:
    # Judged stuck, event sent, crash before marking; meanwhile the pod started and finished.
    verdict = Verdict("PendingTimeout", "pod p was Pending for 950 s", NOW)
    job = make_job(
        conditions=[("Complete", "CompletionsReached", "done")], annotations={ANN_VERDICT: verdict.annotation()}
    )
    data = judge(job, [make_pod("p", "Succeeded", exit_code=0)])
    assert (data["outcome"], data["reason"]) == ("failed", "PendingTimeout")


def test_a_hand_edited_verdict_is_ignored() -> None:
    assert Verdict.of(make_job(annotations={ANN_VERDICT: "{not json"})) is None


def test_an_unfinished_job_without_verdict_has_no_outcome() -> None:
    with pytest.raises(ValueError, match="has not finished"):
        outcome(make_job(status={"active": 1}), [], verdict=None, now=NOW)


@given(st.text(max_size=3000), st.integers(min_value=1, max_value=2000))
def test_cut_tail_keeps_the_end_within_the_limit(text: str, limit: int) -> None:
    kept, cut = cut_tail(text, limit)
    assert len(kept.encode()) <= limit or not cut
    assert text.endswith(kept)
    assert cut == (len(text.encode()) > limit)
