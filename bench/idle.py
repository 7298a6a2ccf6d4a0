"""What an idle stop and the next start cost: ARM calls, and the latency a first request pays.

Runs the app's real idle policy, gate and local runner against the ARM stand-in (stop/start
LROs with power states), the Kubernetes stand-in (its API goes away while stopped) and Azurite
(queues and the power record's table), all on loopback.

* The ARM (and Kubernetes / Table) calls are counts, which hold for real ARM as long as the code
  paths are the same.
* The latencies are STAND-IN TIMINGS: the stand-in stops and starts a cluster in
  ``--start-seconds`` (default 2 s); AKS takes minutes (learn.microsoft.com/azure/aks/start-stop-cluster
  gives no figure; several minutes is commonly reported, UNVERIFIED here). What the numbers show
  is the app's own overhead on top of the platform's start time: the deferral delay
  (VNB_BOOTSTRAP_DEFER_SECONDS) and the evaluations until the virtual node is Ready again.

    .venv/bin/python bench/idle.py [--start-seconds 2] [--defer-seconds 1]
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bootstrap_calls import RG, namespace_creator
from devtools.azurite import Azurite
from devtools.runner import LocalRunner
from devtools.standins.arm.standin import CREDENTIAL_ENV_CONFLICTS, ArmStandIn, RecordedRequest
from devtools.standins.kube.apiserver import KubeStandIn
from shared.cluster.bootstrap import AksGate
from shared.cluster.idle_gate import IdleGate
from shared.cluster.power import Act
from shared.cluster.power_store import PowerStore
from shared.config.settings import Settings
from shared.flows.idle import idle_step
from tests.conftest import BASE_ENV, REPO

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
FAST_HOST = {
    "version": "2.0",
    "extensions": {
        "queues": {
            "maxPollingInterval": "00:00:00.100",
            "visibilityTimeout": "00:00:00.100",
            "batchSize": 16,
            "newBatchThreshold": 8,
            "maxDequeueCount": 5,
            "messageEncoding": "none",
        }
    },
}


class Clock:
    """The policy's clock, moved by hand over the idle minutes and the drain (starts at now:
    the runner's own reconcile timer wrote the record with real time)."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at


def label(r: RecordedRequest) -> str:
    p = r.path.lower()
    tail = p.rsplit("/", 1)[-1]
    if "/operations/" in p or "/operationresults/" in p:
        return f"{r.method} LRO status"
    if tail in ("stop", "start"):
        return f"POST {tail} ({r.status})"
    if tail == "listclusterusercredential":
        return "POST listClusterUserCredential"
    if "/managednamespaces/" in p:
        return f"{r.method} managed namespace"
    if "/roleassignments/" in p:
        return f"{r.method} role assignment"
    if "/virtualnetworks/" in p:
        return f"{r.method} network"
    if "/managedclusters/" in p:
        return f"{r.method} managed cluster"
    return f"{r.method} {tail}"


def show(title: str, calls: list[RecordedRequest], kube_calls: int) -> None:
    counts = collections.Counter(label(r) for r in calls)
    print(f"  {title}: {len(calls)} ARM call(s), {kube_calls} Kubernetes call(s)")
    for name, n in sorted(counts.items()):
        print(f"    {n:>3} × {name}")


def world(start_seconds: float) -> tuple[ArmStandIn, KubeStandIn, dict[str, str]]:
    kube = KubeStandIn(virtual_node=False, namespaces=("default",), pod_start_seconds=0.05).start()
    arm = ArmStandIn(
        kubeconfig_cluster=(kube.url, kube.ca_pem),
        on_virtual_node_enabled=kube.add_virtual_node,
        on_namespace_created=namespace_creator(kube),
        cluster_create_seconds=0.3,
        addon_enable_seconds=0.2,
        provider_register_seconds=0.1,
        cluster_resource_group=RG,
    )
    arm.cluster_stop_seconds = start_seconds
    arm.cluster_start_seconds = start_seconds
    arm.on_power_changed = kube.power
    arm.start()
    kube.token_validator = arm.kube_token_validator()
    arm.create_resource_group(RG, "westus")
    arm.grant(
        arm.app_principal_id, f"/subscriptions/{arm.subscription_id}", ["Microsoft.ContainerInstance/register/action"]
    )
    for name in CREDENTIAL_ENV_CONFLICTS:
        os.environ.pop(name, None)
    os.environ.update(arm.credential_env())
    env = dict(BASE_ENV)
    env.pop("VNB_KUBECONFIG", None)
    env.update(arm.credential_env())
    env.update(
        VNB_CLUSTER_MODE="aks",
        VNB_SUBSCRIPTION_ID=arm.subscription_id,
        VNB_RESOURCE_GROUP=RG,
        VNB_APP_PRINCIPAL_ID=arm.app_principal_id,
        VNB_ARM_ENDPOINT=arm.url,
        VNB_NAMESPACE="vnode-batch",
        VNB_IDLE_STOP_MINUTES="30",
        VNB_READY_CACHE_SECONDS="0.2",
        VNB_KUBE_TIMEOUT_SECONDS="5",
        VNB_RECONCILE_SCHEDULE="*/1 * * * * *",
    )
    return arm, kube, env


def first_request(azurite: Azurite, env: dict[str, str], key: str) -> dict[str, float]:
    """Enqueue one request through the local runner; seconds to Job created and to its event."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueServiceClient

    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    requests = service.get_queue_client(env["VNB_REQUESTS_QUEUE"])
    events = service.get_queue_client(env["VNB_EVENTS_QUEUE"])
    for q in (requests, events):
        try:
            q.create_queue()
        except ResourceExistsError:
            pass
    with _host(env):
        start = time.monotonic()
        requests.send_message(json.dumps({"id": key, "image": IMAGE, "command": ["sh", "-c", f"echo {key}"]}))
        created = done = None
        deadline = start + 300
        while done is None and time.monotonic() < deadline:
            if created is None and any(key.replace("-", "") in name.replace("-", "") for name in _jobs(env)):
                created = time.monotonic() - start
            for m in events.receive_messages(max_messages=32, visibility_timeout=30):
                if json.loads(m.content)["data"].get("requestKey") == key:
                    done = time.monotonic() - start
                events.delete_message(m)
            time.sleep(0.05)
    return {"created": created or float("nan"), "event": done or float("nan")}


def _host(env: dict[str, str]) -> Any:
    """The local host: devtools.host.LocalHost (the app on the real worker runtime) once the host
    rewrite is merged, else the in-process devtools.runner.LocalRunner."""
    try:
        from devtools.host import LocalHost  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        import function_app

        return LocalRunner(function_app.app, settings=env, host_json=FAST_HOST)
    return LocalHost(REPO, settings=env, host_json=FAST_HOST)


_KUBE: list[KubeStandIn] = []


def _jobs(env: dict[str, str]) -> list[str]:
    return [j["metadata"]["name"] for j in _KUBE[0].jobs("vnode-batch")] if _KUBE else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--start-seconds", type=float, default=2.0, help="stand-in stop/start LRO duration")
    parser.add_argument("--defer-seconds", type=int, default=1, help="VNB_BOOTSTRAP_DEFER_SECONDS")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for name in ("azure", "devtools", "vnode_batch", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)

    arm, kube, env = world(args.start_seconds)
    _KUBE.append(kube)
    schedules = Path(tempfile.mkdtemp()) / "schedules.json"
    schedules.write_text(json.dumps({"version": 1, "schedules": []}))
    prefix = "idle" + uuid.uuid4().hex[:6]
    try:
        with Azurite(REPO) as azurite:
            env.update(
                AzureWebJobsStorage=azurite.connection_string,
                VNB_REQUESTS_QUEUE=f"{prefix}-requests",
                VNB_EVENTS_QUEUE=f"{prefix}-events",
                VNB_SCHEDULES_FILE=str(schedules),
                VNB_BOOTSTRAP_DEFER_SECONDS=str(args.defer_seconds),
                VNB_LEDGER_TABLE=prefix,
            )
            settings = Settings.from_env(env)
            gate = AksGate(settings)
            while gate.check().cluster is None:  # bootstrap first (not measured here: bench/bootstrap_calls.py)
                time.sleep(0.1)
            print("Idle stop and start on the stand-ins (ARM calls are counts; times are STAND-IN timings,")
            print(
                f"with stop/start LROs of {args.start_seconds:g} s and VNB_BOOTSTRAP_DEFER_SECONDS={args.defer_seconds}).\n"
            )

            warm = first_request(azurite, env, "warm-1")
            print(
                f"0. Baseline, cluster running: Job created after {warm['created']:.2f} s, event after {warm['event']:.2f} s\n"
            )

            clock = Clock()
            idle = IdleGate(settings, inner=AksGate(settings), store=PowerStore(settings), now=clock)
            idle.inner.check()
            steps: list[tuple[Act, list[RecordedRequest], int]] = []
            for advance in (timedelta(minutes=31), timedelta(minutes=5)):
                clock.at += advance
                arm.reset_records()
                kube.reset_metrics()
                report = idle_step(settings=settings, gate=idle, waiting=lambda: 0, now=clock)
                assert report.step is not None
                steps.append((report.step.act, list(arm.requests), sum(kube.request_counts().values())))
            assert [a for a, _, _ in steps] == [Act.DRAIN, Act.STOP], steps
            print("1. The idle stop, one reconcile-timer step each (on top of each pass's own calls, unchanged):")
            for act, calls, kube_calls in steps:
                show(f"{act} step", calls, kube_calls)
            t0 = time.monotonic()
            cluster_id = (
                f"/subscriptions/{arm.subscription_id}/resourceGroups/{RG}"
                f"/providers/Microsoft.ContainerService/managedClusters/{settings.cluster_name}"
            )
            while (arm.get(cluster_id) or {}).get("properties", {}).get("powerState", {}).get("code") != "Stopped":
                time.sleep(0.05)
            print(f"  cluster Stopped {time.monotonic() - t0:.2f} s after the POST (the stand-in's LRO)\n")

            arm.reset_records()
            kube.reset_metrics()
            cold = first_request(azurite, env, "after-idle-1")
            start_calls = list(arm.requests)
            print("2. The first request after the idle stop (it starts the cluster, is deferred, then runs):")
            show("start, until the request's Job exists", start_calls, sum(kube.request_counts().values()))
            print(f"  Job created after {cold['created']:.2f} s, completion event after {cold['event']:.2f} s")
            added = cold["event"] - warm["event"]
            print(
                f"  added latency vs the baseline: {added:.2f} s (stand-in: {args.start_seconds:g} s start LRO "
                f"+ deferrals of {args.defer_seconds} s + evaluations); on Azure add AKS's start time instead"
            )
    finally:
        arm.stop()
        kube.stop()


if __name__ == "__main__":
    main()
