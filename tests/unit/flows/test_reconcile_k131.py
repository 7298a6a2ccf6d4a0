"""The reconcile pass on Kubernetes 1.31+ behaviour (in-memory JobStore): a log read that fails
with a 5xx is "no log tail" with the reason in the event, never a skipped report; a 410 Expired
continue token restarts the listing; a Job with only ``FailureTarget`` is reported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.adapters.kube import KubePermanentError, KubeTransientError, Page
from shared.config.settings import Settings
from tests.unit.flows.test_reconcile_service import Events, FakeJobs, done, pass_
from tests.unit.outcomes.test_reconcile_outcome import make_job, make_pod


class SickLogs(FakeJobs):
    """Every log read of the pods of ``sick`` fails as a virtual node that is down answers."""

    def __init__(self, sick: str) -> None:
        super().__init__()
        self.sick = sick

    def pod_log(self, pod: str, *, tail_lines: int, limit_bytes: int, container: str | None = None) -> str | None:
        if pod.startswith(self.sick):
            self.calls.append(("pod_log", pod))
            raise KubeTransientError(
                "Kubernetes API GET .../log returned 500 InternalError: dial tcp: i/o timeout", status=500
            )
        return super().pod_log(pod, tail_lines=tail_lines, limit_bytes=limit_bytes, container=container)


def test_log_500s_on_one_job_do_not_hold_back_any_report(make_settings: Callable[..., Settings]) -> None:
    jobs = SickLogs("j-sick")
    for i in range(7):  # more than the transient streak that would end a pass
        jobs.add(f"j-sick-{i}", done(False), [make_pod("p", "Failed", exit_code=2)])
    jobs.add("j-well", done(True), [make_pod("p", "Succeeded", exit_code=0)])
    events = Events()
    report = pass_(make_settings(VNB_KEEP_FINISHED_SECONDS="0"), jobs, events)
    assert report.aborted is None
    by_job = {e["data"]["jobName"]: e["data"] for e in events.sent}
    assert sorted(by_job) == sorted([*(f"j-sick-{i}" for i in range(7)), "j-well"])
    sick = by_job["j-sick-0"]
    assert sick["logTail"][0]["text"] == ""
    assert "500" in sick["logTail"][0]["unavailable"]
    assert by_job["j-well"]["logTail"][0]["text"].endswith("line 99\n")
    assert "unavailable" not in by_job["j-well"]["logTail"][0]
    assert not jobs.jobs  # every one reported and deleted


class ExpiringPages(FakeJobs):
    """The second page's continue token has expired (410), once."""

    expired = False

    def list_jobs(self, *, label_selector: str, limit: int, continue_token: str | None = None) -> Page:
        if continue_token is not None and not self.expired:
            self.expired = True
            self.calls.append(("list_jobs", label_selector))
            raise KubePermanentError(
                "Kubernetes API GET jobs returned 410 Expired: too old", status=410, reason="Expired"
            )
        return super().list_jobs(label_selector=label_selector, limit=limit, continue_token=continue_token)


def test_an_expired_continue_token_restarts_the_listing(make_settings: Callable[..., Settings]) -> None:
    jobs = ExpiringPages()
    for i in range(5):
        jobs.add(f"j-{i}", done(True), [make_pod("p", "Succeeded", exit_code=0)])
    events = Events()
    report = pass_(make_settings(VNB_KEEP_FINISHED_SECONDS="0", VNB_RECONCILE_PAGE_SIZE="2"), jobs, events)
    assert report.aborted is None
    assert sorted(e["data"]["jobName"] for e in events.sent) == [f"j-{i}" for i in range(5)]


def test_a_job_with_only_failure_target_is_reported_once(make_settings: Callable[..., Settings]) -> None:
    jobs = FakeJobs()
    job: dict[str, Any] = make_job(
        conditions=[("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline")],
        status={"failed": 1, "terminating": 1},
    )
    stuck = make_pod("p", "Running")
    stuck["metadata"]["deletionTimestamp"] = "2026-11-27T01:02:00Z"
    jobs.add("j", job, [stuck])
    events = Events()
    s = make_settings(VNB_KEEP_FINISHED_SECONDS="0")
    pass_(s, jobs, events)
    pass_(s, jobs, events)
    assert [(e["data"]["jobName"], e["data"]["reason"]) for e in events.sent] == [("j", "DeadlineExceeded")]
