"""Node objects of the stand-in: one AKS system node and the virtual node's Node."""

from __future__ import annotations

import hashlib
import uuid

from devtools.standins.kube.objects import Obj
from devtools.standins.metav1_time import now_rfc3339

VIRTUAL_NODE = "virtual-node-aci-linux"
SYSTEM_NODE = "aks-system-00000000"
VK_TAINT = {"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}


def fake_hex(seed: str, n: int = 64) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def node_obj(
    rv: str,
    name: str,
    labels: dict[str, str],
    taints: list[Obj],
    *,
    ip: str,
    kubelet: str,
    capacity: dict[str, str],
    info: dict[str, str],
) -> Obj:
    now = now_rfc3339()
    md = {
        "name": name,
        "uid": str(uuid.uuid4()),
        "resourceVersion": rv,
        "creationTimestamp": now,
        "labels": labels,
        "annotations": {
            "node.alpha.kubernetes.io/ttl": "0",
            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        },
    }
    spec: Obj = {"taints": taints} if taints else {}
    conditions = [
        {
            "type": t,
            "status": "False",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
            "reason": r,
            "message": m,
        }
        for t, r, m in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        )
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": "True",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
        }
    )
    node_info = {
        "machineID": fake_hex(name, 32),
        "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
        "bootID": str(uuid.uuid4()),
        "kernelVersion": info.get("kernelVersion", ""),
        "osImage": info.get("osImage", ""),
        "containerRuntimeVersion": info.get("containerRuntimeVersion", ""),
        "kubeletVersion": kubelet,
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": "amd64",
    }
    status = {
        "capacity": capacity,
        "allocatable": dict(capacity),
        "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": node_info,
    }
    return {"metadata": md, "spec": spec, "status": status}


def system_node_obj(rv: str) -> Obj:
    labels = {
        "agentpool": "system",
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "Standard_D4s_v5",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.azure.com/agentpool": "system",
        "kubernetes.azure.com/mode": "system",
        "kubernetes.azure.com/role": "agent",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": SYSTEM_NODE,
        "kubernetes.io/os": "linux",
        "kubernetes.io/role": "agent",
        "node.kubernetes.io/instance-type": "Standard_D4s_v5",
        "topology.kubernetes.io/region": "westus",
    }
    return node_obj(
        rv,
        SYSTEM_NODE,
        labels,
        [],
        ip="10.240.0.4",
        kubelet="v1.33.2",
        capacity={"cpu": "4", "ephemeral-storage": "129886128Ki", "memory": "16375716Ki", "pods": "250"},
        info={
            "kernelVersion": "5.15.0-1089-azure",
            "osImage": "Ubuntu 22.04.5 LTS",
            "containerRuntimeVersion": "containerd://1.7.27-1",
        },
    )


def virtual_node_obj(rv: str) -> Obj:
    """The add-on's node. Labels, taint and capacity from virtual-kubelet/azure-aci
    ``pkg/provider/vk_node.go`` (``ConfigureNode``) and ``aci.go setupNodeCapacity``: 10000 CPU,
    4Ti memory, 5000 pods by default; no ``nvidia.com/gpu`` (the GPU capacity code is commented
    out since ACI GPU was retired). Such a capacity never makes Kubernetes push back: ACI's quotas
    are the limit (``virtual_node.quotas``)."""
    labels = {
        "alpha.service-controller.kubernetes.io/exclude-balancer": "true",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.azure.com/managed": "false",
        "kubernetes.azure.com/role": "agent",
        "kubernetes.io/hostname": VIRTUAL_NODE,
        "kubernetes.io/os": "linux",
        "kubernetes.io/role": "agent",
        "node.kubernetes.io/exclude-from-external-load-balancers": "true",
        "type": "virtual-kubelet",
    }
    return node_obj(
        rv,
        VIRTUAL_NODE,
        labels,
        [dict(VK_TAINT)],
        ip="10.241.0.4",
        kubelet="v1.33.2-vk-azure-aci-1.6.2",
        capacity={"cpu": "10k", "memory": "4Ti", "pods": "5k"},
        info={"kernelVersion": "", "osImage": "", "containerRuntimeVersion": ""},
    )
