"""The cost in completion events, on the Kubernetes stand-in's virtual node, against a value
computed by hand from what the stand-in reported (each pod's container start and finish).

The app's real reconcile pass reads the Job and its pods over HTTPS and sends the event to
Azurite; the test reads the same pods *before* the pass (it deletes them) and does the
arithmetic itself: the resources ACI bills (250m → 0.25 vCPU, 1.5G → 1.5 GB) × seconds × price.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from devtools.runner import exported_settings
from devtools.standins.kube.apiserver import KubeStandIn
from shared.adapters.kube import Cluster, from_kubeconfig_dict
from shared.adapters.queues import Queues as AppQueues
from shared.config.settings import Settings
from shared.flows.reconcile import KubeJobs, reconcile
from shared.intake.request import parse_request
from shared.job.render import JobMeta, build_job, job_name
from tests.conftest import wait_for
from tests.integration.conftest import Queues
from tests.integration.test_reconcile import NS, EventLog

pytestmark = pytest.mark.integration

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
VCPU_PRICE = Decimal("0.00002")  # set on purpose, not the default: the event must use the setting
GB_PRICE = Decimal("0.000002")


def _seconds(a: str, b: str) -> int:
    return int((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds())


def _window(pod: dict[str, Any]) -> int:
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return _seconds(term["startedAt"], term["finishedAt"])


def _finished(job: dict[str, Any] | None) -> bool:
    conditions = (job or {}).get("status", {}).get("conditions") or []
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)


def test_cost_of_a_retried_array_job_matches_the_hand_computed_value(
    app_env: dict[str, str], queues: Queues, kube: KubeStandIn
) -> None:
    env = {**app_env, "VNB_PRICE_VCPU_SECOND": str(VCPU_PRICE), "VNB_PRICE_GB_SECOND": str(GB_PRICE)}
    env["VNB_PRICE_CURRENCY"] = "EUR"
    with exported_settings(env):
        settings = Settings.from_env(env)
    # Two indexes; every first attempt fails once after 1 s, then each retry runs 2 s.
    request = parse_request(
        {
            "image": IMAGE,
            "command": ["sh", "-c", "sleep 1; fail-once; sleep 2; echo done"],
            "cpu": "250m",
            "memory": "1.5G",
            "completions": 2,
            "parallelism": 2,
            "retries": 3,
        },
        settings=settings,
    )
    key = "cost-array-1"
    cluster = Cluster(from_kubeconfig_dict(kube.kubeconfig_dict(), context=None, timeout=5), NS)
    cluster.create_job(build_job(request, JobMeta(key=key, message_id="m-1", enqueued_at=None), settings=settings))
    wait_for(
        lambda: _finished(kube.job(NS, job_name(key, settings=settings))), what="the array Job to finish", timeout=30
    )
    pods = [
        p
        for p in kube.pods(NS)
        if p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == job_name(key, settings=settings)
    ]

    # --- by hand, from the stand-in's own report -----------------------------------------------
    failed = [p for p in pods if p["status"]["phase"] == "Failed"]
    assert (len(failed), len(pods)) == (2, 4), "one failed attempt per index, then a success"
    seconds = {p["metadata"]["name"]: _window(p) for p in pods}
    cpu, gb = Decimal("0.25"), Decimal("1.5")  # on ACI's steps (10m, 0.1 GB): billed as requested
    total_s = sum(seconds.values())
    failed_s = sum(seconds[p["metadata"]["name"]] for p in failed)
    expected = cpu * total_s * VCPU_PRICE + gb * total_s * GB_PRICE
    expected_failed = cpu * failed_s * VCPU_PRICE + gb * failed_s * GB_PRICE

    report = reconcile(settings=settings, jobs=KubeJobs(cluster), send_event=AppQueues(settings).send_event)
    assert report.reported == 1
    [event] = EventLog(queues).poll()
    cost = event["data"]["cost"]
    assert cost["currency"] == "EUR"
    assert cost["prices"] == {"currency": "EUR", "vcpuSecond": "0.00002", "gbSecond": "0.000002"}
    assert cost["billedSeconds"] == total_s
    assert cost["vcpuSeconds"] == pytest.approx(float(cpu * total_s))
    assert cost["gbSeconds"] == pytest.approx(float(gb * total_s))
    assert cost["amount"] == pytest.approx(float(expected), abs=1e-8)
    assert cost["failedAttempts"]["count"] == 2
    assert cost["failedAttempts"]["amount"] == pytest.approx(float(expected_failed), abs=1e-8)
    assert cost["containerGroups"] == 4
    assert [i["index"] for i in cost["indexes"]] == [0, 1]
    assert [i["attempts"] for i in cost["indexes"]] == [2, 2]
    assert sum(i["amount"] for i in cost["indexes"]) == pytest.approx(cost["amount"], abs=1e-7)
    assert total_s >= 4, "each retry slept 2 s of wall time"
