"""Outcomes tell the truth about what the AKS virtual node reports (pure, no cluster).

Pods below have the status azure-aci writes (pkg/provider/containergroup_to_pod.go): every
container ID is ``aci://<sha256>``; ACI states Succeeded/Terminated become ``terminated``
with reason ``Completed`` and no exit code (serialised as ``exitCode: 0``, Go's zero value);
Failed/Canceled carry ACI's exit code; a create error becomes pod reason ``ProviderFailed``
with the Azure SDK's error text (virtual-kubelet node/pod.go handleProviderError).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.outcomes.outcome import reported_exit_code
from shared.outcomes.provider_failure import classify
from tests.unit.outcomes.test_reconcile_outcome import NOW, judge, make_job, make_pod, ts

ACI_ID = "aci://" + "ab" * 32
BACKOFF = [("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]
COMPLETE = [("Complete", "CompletionsReached", "Reached expected number of succeeded pods")]


def aci_pod(name: str, phase: str, *, aci_state: str, exit_code: int | None = None) -> dict[str, Any]:
    """A pod as azure-aci reports it after its container reached ``aci_state`` in ACI."""
    pod = make_pod(name, phase, exit_code=0)
    status = pod["status"]["containerStatuses"][0]
    term = status["state"]["terminated"]
    status["containerID"] = ACI_ID
    if aci_state in ("Succeeded", "Terminated"):
        term.update(reason="Completed", exitCode=0)  # ExitCode never set by azure-aci
    else:
        term.update(reason=aci_state, exitCode=exit_code, message="Killed")
    return pod


def test_a_container_that_exited_3_on_aci_is_never_reported_as_exit_0() -> None:
    # ACI state Terminated (the container exited 3, restartPolicy Never): azure-aci gives "Completed", 0.
    job = make_job(conditions=BACKOFF)
    job["status"]["failed"] = 1
    data = judge(job, [aci_pod("p-1", "Failed", aci_state="Terminated")])
    assert data["exitCode"] is None
    assert data["exitCodeUnavailable"]["reason"] == "NotReportedByProvider"
    assert "issue #417" in data["exitCodeUnavailable"]["message"]
    assert "did not report its exit code" in data["message"]
    assert "exited with code 0" not in data["message"]


def test_a_success_on_aci_has_no_exit_code_rather_than_a_made_up_zero() -> None:
    job = make_job(conditions=COMPLETE)
    data = judge(job, [aci_pod("p-ok", "Succeeded", aci_state="Succeeded")])
    assert (data["outcome"], data["exitCode"]) == ("succeeded", None)
    assert data["exitCodeUnavailable"]["reason"] == "NotReportedByProvider"


def test_aci_failed_state_carries_the_real_exit_code() -> None:
    job = make_job(conditions=BACKOFF)
    data = judge(job, [aci_pod("p-1", "Failed", aci_state="Failed", exit_code=137)])
    assert data["exitCode"] == 137
    assert data["exitCodeUnavailable"] is None
    assert "exited with code 137" in data["message"]


def test_a_kubelet_exit_0_is_still_reported() -> None:
    job = make_job(conditions=COMPLETE)
    data = judge(job, [make_pod("p-ok", "Succeeded", exit_code=0)])  # containerd, no aci:// id
    assert (data["exitCode"], data["exitCodeUnavailable"]) == (0, None)


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ({"exitCode": 0, "reason": "Completed", "containerID": ACI_ID}, None),
        ({"exitCode": 3, "reason": "Failed", "containerID": ACI_ID}, 3),
        ({"exitCode": 0, "reason": "Canceled", "containerID": ACI_ID}, 0),
        ({"exitCode": -137, "reason": "NotFound", "containerID": ACI_ID}, None),  # podsTracker: group gone
        ({"exitCode": 0, "reason": "NotFound", "containerID": ACI_ID}, None),  # aci.go DeletePod
        ({"exitCode": 2, "reason": "Error", "containerID": ACI_ID}, 2),
        ({"exitCode": 0, "reason": "Completed", "containerID": "containerd://1"}, 0),
        ({"reason": "Completed", "containerID": ACI_ID}, None),
    ],
)
def test_which_exit_codes_the_provider_really_reported(term: dict[str, Any], expected: int | None) -> None:
    assert reported_exit_code(term) == expected


def test_no_container_ran_says_so() -> None:
    job = make_job(conditions=[("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")])
    data = judge(job, [])
    assert data["exitCode"] is None
    assert data["exitCodeUnavailable"]["reason"] == "NoContainerExited"


AZCORE_CAPACITY = """PUT https://management.azure.com/subscriptions/0/resourceGroups/MC_rg/providers/Microsoft.ContainerInstance/containerGroups/vnode-batch-vnb-x-abcde
--------------------------------------------------------------------------------
RESPONSE 409: 409 Conflict
ERROR CODE: ServiceUnavailable
--------------------------------------------------------------------------------
{
  "error": {
    "code": "ServiceUnavailable",
    "message": "The requested resource is not available in the location 'westeurope' at this moment."
  }
}
--------------------------------------------------------------------------------
"""
AZCORE_QUOTA_400 = AZCORE_CAPACITY.replace("409: 409 Conflict", "400: 400 Bad Request").replace(
    "ServiceUnavailable", "ContainerGroupQuotaReached"
)
AZCORE_INVALID = (
    AZCORE_CAPACITY.replace("409: 409 Conflict", "400: 400 Bad Request")
    .replace("ServiceUnavailable", "ResourceLimitsLessThanRequests")
    .replace(
        "The requested resource is not available in the location 'westeurope' at this moment.", "limit below request"
    )
)
AZCORE_FORBIDDEN = (
    AZCORE_CAPACITY.replace("409: 409 Conflict", "403: 403 Forbidden")
    .replace("ServiceUnavailable", "AuthorizationFailed")
    .replace("The requested resource is not available in the location 'westeurope' at this moment.", "no access")
)


@pytest.mark.parametrize(
    ("message", "klass", "code", "status"),
    [
        (AZCORE_CAPACITY, "quotaOrCapacity", "ServiceUnavailable", 409),
        (AZCORE_QUOTA_400, "quotaOrCapacity", "ContainerGroupQuotaReached", 400),
        (AZCORE_INVALID, "invalidForAci", "ResourceLimitsLessThanRequests", 400),
        (AZCORE_FORBIDDEN, "other", "AuthorizationFailed", 403),
        (AZCORE_CAPACITY.replace("409: 409 Conflict", "429: 429 Too Many Requests"), "quotaOrCapacity", None, 429),
        (
            'api call to https://management.azure.com/x: got HTTP response status code 503 error code "ServiceUnavailable"',
            "quotaOrCapacity",
            "ServiceUnavailable",
            503,
        ),
        ("ACI does not support lifecycle hooks", "invalidForAci", None, None),
        ("Put https://management.azure.com/x: context deadline exceeded", "other", None, None),
    ],
)
def test_provider_failures_are_classified(message: str, klass: str, code: str | None, status: int | None) -> None:
    found = classify(message)
    assert found.failure_class == klass
    if code is not None:
        assert found.code == code
    assert found.status == status
    assert found.message == message


def test_provider_failed_event_carries_acis_message_and_class() -> None:
    job = make_job(conditions=BACKOFF)
    pod = make_pod("p-aci", "Failed", waiting=("ProviderFailed", ""), reason="ProviderFailed", message=AZCORE_INVALID)
    data = judge(job, [pod])
    assert data["reason"] == "ProviderFailed"
    failure = data["providerFailure"]
    assert (failure["class"], failure["code"], failure["status"]) == (
        "invalidForAci",
        "ResourceLimitsLessThanRequests",
        400,
    )
    assert failure["message"] == AZCORE_INVALID
    assert data["exitCodeUnavailable"]["reason"] == "NoContainerExited"


def test_a_stuck_provider_failure_is_classified_too() -> None:
    verdict = {"reason": "ProviderFailed", "message": f"pod p was Pending: {AZCORE_CAPACITY}", "at": ts(150)}
    job = make_job(annotations={"vnode-batch.io/verdict": json.dumps(verdict)})
    data = judge(job, [])
    assert data["providerFailure"]["class"] == "quotaOrCapacity"


def test_other_failures_have_no_provider_failure() -> None:
    job = make_job(conditions=BACKOFF)
    data = judge(job, [aci_pod("p-1", "Failed", aci_state="Failed", exit_code=1)])
    assert data["providerFailure"] is None


def test_the_event_says_which_resources_were_applied() -> None:
    recorded = {"cpu": {"requested": "125m", "applied": "130m"}, "memory": {"requested": None, "applied": "1500M"}}
    job = make_job(conditions=COMPLETE, annotations={"vnode-batch.io/resources": json.dumps(recorded)})
    data = judge(job, [make_pod("p-ok", "Succeeded", exit_code=0)])
    assert data["resources"] == recorded
    assert judge(make_job(conditions=COMPLETE), [])["resources"] is None


def test_aci_log_timestamps_are_removed_and_other_lines_kept() -> None:
    from shared.job.logs import strip_timestamps

    aci = "2026-11-29T14:41:31.071607Z about to fail\n2026-11-29T14:41:31.5Z boom\n"
    assert strip_timestamps(aci) == "about to fail\nboom\n"
    assert strip_timestamps("2026-11-29 not ACI's\nplain\n") == "2026-11-29 not ACI's\nplain\n"


def test_only_logs_of_containers_on_aci_are_marked_for_stripping() -> None:
    from shared.outcomes.outcome import outcome

    job = make_job(conditions=COMPLETE)
    on_aci = outcome(job, [aci_pod("p-aci", "Succeeded", aci_state="Succeeded")], verdict=None, now=NOW)
    on_kubelet = outcome(job, [make_pod("p-k", "Succeeded", exit_code=0)], verdict=None, now=NOW)
    assert [s.on_aci for s in on_aci.log_sources] == [True]
    assert [s.on_aci for s in on_kubelet.log_sources] == [False]
