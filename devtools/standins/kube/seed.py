"""Bulk seeding of finished Jobs for benchmarks (not platform behaviour). Writes the cluster's
stores and bookkeeping directly, under its lock."""

from __future__ import annotations

import uuid

from devtools.standins.kube.cluster import Cluster
from devtools.standins.kube.nodes import VIRTUAL_NODE, fake_hex
from devtools.standins.kube.objects import Obj
from devtools.standins.kube.state import CONTROLLER_UID, JOB_NAME
from devtools.standins.metav1_time import now_rfc3339


def seed_finished_jobs(
    cluster: Cluster,
    ns: str,
    count: int,
    *,
    labels: dict[str, str],
    annotations: dict[str, str] | None,
    succeeded: bool,
    name_prefix: str,
    with_pods: bool,
    image: str = "mcr.microsoft.com/azurelinux/busybox:1.36",
) -> list[str]:
    """Bulk insert of finished Jobs (and one finished pod each). Objects share their
    immutable parts (pod spec, pod status) to keep 100k Jobs within a few hundred MB."""
    with cluster.lock:
        if ns not in cluster.namespaces:
            cluster.create_namespace({"metadata": {"name": ns}})
        now = now_rfc3339()
        pod_spec: Obj = {
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "command": ["sh", "-c", "echo done"],
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "nodeSelector": {"kubernetes.io/role": "agent", "kubernetes.io/os": "linux", "type": "virtual-kubelet"},
            "tolerations": [
                {"key": "virtual-kubelet.io/provider", "operator": "Exists"},
                {"key": "azure.com/aci", "effect": "NoSchedule"},
            ],
        }
        reason = "CompletionsReached" if succeeded else "BackoffLimitExceeded"
        message = (
            "Reached expected number of succeeded pods" if succeeded else "Job has reached the specified backoff limit"
        )
        kinds = ("SuccessCriteriaMet", "Complete") if succeeded else ("FailureTarget", "Failed")
        job_status: Obj = {
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                    "reason": reason,
                    "message": message,
                }
                for t in kinds
            ],
            "startTime": now,
        }
        if succeeded:
            job_status["completionTime"] = now
            job_status["succeeded"] = 1
        else:
            job_status["failed"] = 1
        job_status.update({"uncountedTerminatedPods": {}, "terminating": 0, "ready": 0})
        exit_code = 0 if succeeded else 1
        term = {
            "exitCode": exit_code,
            "reason": "Completed" if succeeded else "Error",
            "startedAt": now,
            "finishedAt": now,
        }
        pod_status: Obj = {
            "phase": "Succeeded" if succeeded else "Failed",
            "conditions": [
                {
                    "type": "PodReadyToStartContainers",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                },
                {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
                {
                    "type": "Ready",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                    "reason": "PodCompleted",
                },
                {
                    "type": "ContainersReady",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                    "reason": "PodCompleted",
                },
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
            ],
            "hostIP": "10.241.0.4",
            "hostIPs": [{"ip": "10.241.0.4"}],
            "podIP": "10.241.0.200",
            "podIPs": [{"ip": "10.241.0.200"}],
            "startTime": now,
            "containerStatuses": [
                {
                    "name": "main",
                    "state": {"terminated": term},
                    "lastState": {},
                    "ready": False,
                    "restartCount": 0,
                    "image": image,
                    "imageID": f"{image}@sha256:{fake_hex(image)}",
                    "started": False,
                }
            ],
            "qosClass": "BestEffort",
        }
        pod_spec_bound = dict(
            pod_spec,
            nodeName=VIRTUAL_NODE,
            serviceAccountName="default",
            serviceAccount="default",
            enableServiceLinks=True,
            preemptionPolicy="PreemptLowerPriority",
            priority=0,
        )
        start = cluster._seed_seq.get(f"{ns}/{name_prefix}", 0)
        cluster._seed_seq[f"{ns}/{name_prefix}"] = start + count
        jobs: list[Obj] = []
        pods: list[Obj] = []
        origin = {"standin.vnode-batch/origin": "seeded"}
        for i in range(start, start + count):
            name = f"{name_prefix}-{i:06d}"
            if cluster.jobs.get(ns, name) is not None:
                continue
            uid = str(uuid.uuid4())
            tlabels = {**labels, CONTROLLER_UID: uid, JOB_NAME: name, "controller-uid": uid, "job-name": name}
            md: Obj = {
                "name": name,
                "namespace": ns,
                "uid": uid,
                "resourceVersion": cluster.next_rv(),
                "generation": 1,
                "creationTimestamp": now,
                "labels": dict(labels),
            }
            if annotations:
                md["annotations"] = dict(annotations)
            spec = {
                "parallelism": 1,
                "completions": 1,
                "backoffLimit": 6,
                "selector": {"matchLabels": {CONTROLLER_UID: uid}},
                "template": {"metadata": {"labels": tlabels}, "spec": pod_spec},
                "completionMode": "NonIndexed",
                "suspend": False,
                "podReplacementPolicy": "TerminatingOrFailed",
            }
            jobs.append({"metadata": md, "spec": spec, "status": job_status})
            if with_pods:
                pname = f"{name}-{fake_hex(uid, 5)}"
                pmd = {
                    "name": pname,
                    "generateName": f"{name}-",
                    "namespace": ns,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": cluster.next_rv(),
                    "creationTimestamp": now,
                    "labels": tlabels,
                    "annotations": origin,
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": name,
                            "uid": uid,
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                }
                pods.append({"metadata": pmd, "spec": pod_spec_bound, "status": pod_status})
                cluster._pods_by_owner[uid] = {pname}
            # finished Jobs get a JobState only when touched (TTL, deletes); nothing per tick
        cluster.jobs.bulk_put(ns, jobs)
        if pods:
            cluster.pods.bulk_put(ns, pods)
        return [j["metadata"]["name"] for j in jobs]
