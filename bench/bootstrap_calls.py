"""How many ARM calls the bootstrap makes: per step, per waiting message, and once ready.

Runs the app's real gate (real SDK clients, real DefaultAzureCredential) against the ARM and
Kubernetes stand-ins on loopback and counts what the ARM stand-in received. The numbers are
calls, not timings, so they hold for real ARM as long as the code paths are the same (the LRO
durations here are shortened; on Azure a cluster takes minutes, which only adds waiting
evaluations, each costing what the "waiting" rows below show).

    .venv/bin/python bench/bootstrap_calls.py
"""

from __future__ import annotations

import collections
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.standins.arm.standin import CREDENTIAL_ENV_CONFLICTS, ArmStandIn, RecordedRequest
from devtools.standins.kube.apiserver import KubeStandIn
from shared.cluster.bootstrap import AksGate
from shared.config.settings import Settings
from tests.conftest import BASE_ENV

RG = "rg-aks"


def step_of(r: RecordedRequest) -> str:
    p = r.path.lower()
    if p.endswith("/roleassignments"):  # the list, and the DELETEs of the app's own grants
        return "bootstrap-rights"
    if "/roleassignments/" in p and r.method == "DELETE":
        return "bootstrap-rights"
    if "/roleassignments/" in p:
        if "/namespaces/" in p:
            return "app-namespace-role"
        return "vnode-subnet-role" if "/subnets/vnodesubnet/" in p else "cluster-subnet-role"
    if "microsoft.containerinstance" in p:
        return "provider"
    if "/virtualnetworks/" in p:
        return "network"
    if p.endswith("/listclusterusercredential"):
        return "virtual-node (server+CA)"
    if "/managednamespaces/" in p:
        return "namespace"
    if "/managedclusters/" in p:
        if r.method == "PUT":
            return "cluster" if r.status == 201 else "virtual-node-addon"
        return "cluster GET (read by steps 3-8)"
    if re.search(r"/resourcegroups/[^/]+$", p):
        return "location (once)"
    return p


def namespace_creator(kube: KubeStandIn) -> Callable[[str], None]:
    """AKS creating the managed namespace in the cluster (as in tests/integration/bootstrap_fixtures.py)."""

    def create(name: str) -> None:
        with kube.cluster.lock:
            if name not in kube.cluster.namespaces:
                kube.cluster.create_namespace({"metadata": {"name": name}})

    return create


def world(**arm_options: float) -> tuple[ArmStandIn, KubeStandIn, dict[str, str]]:
    kube = KubeStandIn(virtual_node=False, namespaces=("default",)).start()
    arm = ArmStandIn(
        kubeconfig_cluster=(kube.url, kube.ca_pem),
        on_virtual_node_enabled=kube.add_virtual_node,
        on_namespace_created=namespace_creator(kube),
        **arm_options,
    )
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
    env.update(
        VNB_CLUSTER_MODE="aks",
        VNB_SUBSCRIPTION_ID=arm.subscription_id,
        VNB_RESOURCE_GROUP=RG,
        VNB_APP_PRINCIPAL_ID=arm.app_principal_id,
        VNB_ARM_ENDPOINT=arm.url,
    )
    return arm, kube, env


def per_step() -> None:
    arm, kube, env = world(cluster_create_seconds=1.0, addon_enable_seconds=0.5, provider_register_seconds=0.3)
    try:
        gate = AksGate(Settings.from_env({**env, "VNB_READY_CACHE_SECONDS": "0.01"}))
        print("1. From an empty resource group, one evaluation every 0.25 s (a stream of messages):\n")
        print(f"  {'eval':>4}  {'ARM calls':>9}  reason after the evaluation")
        evaluations = 0
        while True:
            before = len(arm.requests)
            readiness = gate.check()
            evaluations += 1
            calls = arm.requests[before:]
            shown = ", ".join(f"{r.method} {step_of(r)}" for r in calls) or "-"
            print(f"  {evaluations:>4}  {len(calls):>9}  {readiness.reason or 'READY'}   [{shown}]")
            if readiness.cluster is not None or readiness.hopeless:
                break
            time.sleep(0.25)
        table: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for r in arm.requests:
            read = r.method in ("GET", "HEAD") or r.path.rsplit("/", 1)[-1].lower().startswith("list")
            table[step_of(r)]["read" if read else "write"] += 1
        print("\n  ARM calls per step over the whole bootstrap:")
        print(f"  {'step':<34} {'read':>4} {'write':>6}")
        for step, counts in table.items():
            print(f"  {step:<34} {counts['read']:>4} {counts['write']:>6}")
        total = len(arm.requests)
        writes = len(arm.write_requests())
        print(f"  {'total':<34} {total - writes:>4} {writes:>6}   ({evaluations} evaluations)")
        kube_calls = sum(kube.request_counts().values())
        aks_tokens = sum(1 for t in arm.token_requests if "6dae42f8" in (t.resource or ""))
        print(
            f"  Kubernetes API calls: {kube_calls}; tokens fetched: {len(arm.token_requests)} ({aks_tokens} for AKS)\n"
        )

        arm.reset_records()
        again = AksGate(Settings.from_env({**env, "VNB_READY_CACHE_SECONDS": "60"}))
        assert again.check().cluster is not None
        print(
            f"2. A new instance on the finished cluster: {len(arm.requests)} ARM reads (GETs and the "
            f"listClusterUserCredential POST), {len(arm.write_requests())} writes"
        )
        arm.reset_records()
        kube.reset_metrics()
        for _ in range(1000):
            again.check()
        print(
            f"   then 1000 messages within VNB_READY_CACHE_SECONDS: {len(arm.requests)} ARM calls, "
            f"{sum(kube.request_counts().values())} Kubernetes calls\n"
        )
    finally:
        arm.stop()
        kube.stop()


def _burst(gate: AksGate, messages: int, seconds: float, threads: int = 8) -> int:
    """``messages`` checks spread over ``seconds`` from ``threads`` threads (one instance's batch)."""
    sent = [0]
    lock = threading.Lock()
    pause = seconds / messages * threads

    def sender() -> None:
        for _ in range(messages // threads):
            gate.check()
            with lock:
                sent[0] += 1
            time.sleep(pause)

    workers = [threading.Thread(target=sender) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return sent[0]


def while_waiting(messages: int = 400, seconds: float = 8.0) -> None:
    print(f"3. While the cluster is Creating: {messages} messages over {seconds:g} s on one instance (8 threads)")
    for cache in ("60", "0.001"):
        arm, kube, env = world(cluster_create_seconds=120, provider_register_seconds=0.1)
        try:
            gate = AksGate(Settings.from_env({**env, "VNB_READY_CACHE_SECONDS": cache}))
            while "is Creating" not in gate.check().reason:
                time.sleep(0.1)
            arm.reset_records()
            sent = _burst(gate, messages, seconds)
            calls = len(arm.requests)
            label = (
                "default cache (not-ready answers reused 5 s)"
                if cache == "60"
                else "no cache (every message evaluates)"
            )
            print(f"   {label:<46}: {calls:>4} ARM calls = {calls / sent:.3f} per message")
        finally:
            arm.stop()
            kube.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    per_step()
    while_waiting()
