"""The issue's inputs, end to end over real sockets: the Job the app creates is one the real
virtual node would run, and the event says what was applied.

Azurite for the queues, the HTTPS Kubernetes stand-in (its Job controller names the pods),
the app's own functions driven by the local runner.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from tests.conftest import job_name_for, wait_for
from tests.integration.conftest import Queues

pytestmark = pytest.mark.integration

NS = "vnode-batch"
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
CONTAINER_GROUP = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,62}$")
"""ACI container-group names (Azure naming rules for Microsoft.ContainerInstance/containerGroups)."""


def test_the_issues_request_runs_with_valid_container_groups_and_aci_sized_resources(
    make_runner: Callable[..., LocalHost], queues: Queues, kube: KubeStandIn
) -> None:
    key = "nightly-ledger-export-2026-0031"
    queues.submit(
        {
            "id": key,
            "image": IMAGE,
            "command": ["sh", "-c", 'echo "$DB_PASSWORD"'],
            "cpu": "125m",
            "memory": "1.5Gi",
            "completions": 3,
            "env": {"DB_PASSWORD": "s3cr$$t"},
        }
    )
    name = job_name_for(key)
    with make_runner(VNB_RECONCILE_SCHEDULE="0 0 0 1 1 *") as runner:
        runner.run_until_idle()
        job = kube.job(NS, name)
        assert job is not None
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert (
            container["resources"]["requests"]
            == container["resources"]["limits"]
            == {
                "cpu": "130m",
                "memory": "1700M",
            }
        )
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["DB_PASSWORD"] == "s3cr$$$$t"  # virtual-kubelet turns $$ into $: it arrives as s3cr$$t
        pods = wait_for(
            lambda: [p for p in kube.pods(NS) if p["metadata"]["labels"].get("job-name") == name] or None,
            what="the Job's pods",
        )
        for pod in pods:
            group = f"{NS}-{pod['metadata']['name']}"  # azure-aci containerGroupName
            assert CONTAINER_GROUP.match(group), group
        wait_for(
            lambda: runner.fire_timer("reconcile") == "succeeded" and queues.count(queues.events) > 0,
            what="the completion event",
        )
    [event] = queues.drain_events()
    assert event["data"]["resources"] == {
        "cpu": {"requested": "125m", "applied": "130m"},
        "memory": {"requested": "1.5Gi", "applied": "1700M"},
    }
    assert event["type"] == "io.vnodebatch.job.succeeded"
    # What the container printed: the password as written, not "s3cr$t".
    assert event["data"]["logTail"][0]["text"] == "s3cr$$t\n"
    # Completed containers on the virtual node have no exit code (azure-aci issue #417): null, not 0.
    assert (event["data"]["exitCode"], event["data"]["exitCodeUnavailable"]["reason"]) == (
        None,
        "NotReportedByProvider",
    )
