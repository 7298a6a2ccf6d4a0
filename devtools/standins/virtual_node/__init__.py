"""A model of the AKS virtual node: virtual-kubelet + the azure-aci provider + Azure Container
Instances, split like azure-aci (``pkg/provider``: naming, resources, env, features, status,
logs) with ACI's quotas on the side. No HTTP and no Kubernetes objects are stored here: the
Kubernetes stand-in (``kube.controllers.scheduler``) calls ``provider.AciProvider`` when it binds a pod to the
virtual node.

Pure helpers other code (and property tests) use:
- ``refusal(namespace, pod)``: every per-pod rule (name, resources, env, features), no quotas.
- ``aci_resources(container)``: the CPU/memory ACI receives.
- ``pod_generate_name(job_name, index)``: a pod name the Job controller could produce.
- ``container_group_name(namespace, pod_name)``.
Each rule cites its source in the module that implements it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devtools.standins.virtual_node.env import aci_env, env_name_refusal
from devtools.standins.virtual_node.errors import Refusal
from devtools.standins.virtual_node.features import (
    SecretLookup,
    SecretObjects,
    container_refusal,
    dropped_fields,
    init_container_refusal,
    pull_credentials,
    volume_refusal,
)
from devtools.standins.virtual_node.naming import container_group_name, name_refusal, pod_generate_name
from devtools.standins.virtual_node.resources import aci_resources, gpu_refusal, group_refusal

__all__ = [
    "Refusal",
    "aci_resources",
    "container_group_name",
    "dropped_fields",
    "pod_generate_name",
    "refusal",
]

DEFAULT_MAX_CPU = 4.0
DEFAULT_MAX_MEMORY_GB = 16.0


def refusal(
    namespace: str,
    pod: Mapping[str, Any],
    *,
    max_cpu: float = DEFAULT_MAX_CPU,
    max_memory_gb: float = DEFAULT_MAX_MEMORY_GB,
    secrets: SecretLookup | None = None,
    secret_objects: SecretObjects | None = None,
) -> Refusal | None:
    """Why the virtual node would refuse ``pod`` (a Pod manifest as a dict), or ``None``.

    Applies, in the order the real components do: virtual-kubelet's env resolution
    (``Refusal.stuck``: the pod would stay Pending), azure-aci's ``getContainers`` /
    ``getImagePullSecrets`` / ``getVolumes`` / ``getInitContainers`` checks, then ACI's checks on
    the create request (group name, env names, CPU/memory rules, per-group size ``max_cpu`` /
    ``max_memory_gb``). Quotas, rates and injected faults are not applied (see ``quotas``).
    """
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or [])
    init_containers = list(spec.get("initContainers") or [])
    pod_name = str((pod.get("metadata") or {}).get("name", ""))
    cg_name = container_group_name(namespace, pod_name)
    envs: list[tuple[str, dict[str, str]]] = []
    for c in init_containers + containers:
        env = aci_env(pod, c)
        if isinstance(env, Refusal):
            return env
        envs.append((str(c.get("name", "")), env))
    for c in containers:
        found = container_refusal(c) or gpu_refusal([c])
        if found is not None:
            return found
    creds = pull_credentials(pod, secret_objects or (lambda _: None))
    found = creds if isinstance(creds, Refusal) else volume_refusal(pod, secrets or (lambda _: None))
    if found is not None:
        return found
    for c in init_containers:
        found = init_container_refusal(c)
        if found is not None:
            return found
    found = name_refusal(cg_name)
    if found is not None:
        return found
    for cname, env in envs:
        found = env_name_refusal(cg_name, cname, env)
        if found is not None:
            return found
    return group_refusal(cg_name, containers, max_cpu=max_cpu, max_memory_gb=max_memory_gb)
