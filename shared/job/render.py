"""Request → Kubernetes Job manifest for the AKS virtual node (pure: no I/O).

Like KEDA's ``generateJobs()``, this builds the object and nothing else; the Kubernetes
adapter sends it. Every manifest it renders validates against the Kubernetes OpenAPI schema
(tests check with kubernetes-validate).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.base.conventions import (
    ANN_CORRELATION_ID,
    ANN_ENQUEUED_AT,
    ANN_KEY,
    ANN_MESSAGE_ID,
    ANN_OUTPUT,
    ANN_REQUEST_HASH,
    ANN_RESOURCES,
    ANN_SCHEMA,
    ANN_TRACEPARENT,
    CONTAINER,
    FINALIZER_REPORT,
    LABEL_KEY_HASH,
    LABEL_PRIORITY,
    LABEL_STATE,
    LABEL_TEAM,
    MANAGED_BY,
    MANAGER,
    STATE_UNREPORTED,
)
from shared.base.quantity import aci_cpu, aci_memory, format_cpu, format_memory_decimal, parse_cpu, parse_memory
from shared.config.settings import Settings
from shared.intake.request import BatchRequest
from shared.intake.trace import NONE, Trace
from shared.secrets.files import mount
from shared.secrets.pull import registry_of
from shared.secrets.pull import secret_name as pull_secret_name

# Selector and tolerations from the AKS virtual-node docs; both tolerations are needed:
# the node carries the virtual-kubelet taint, and ACI-targeted pods tolerate azure.com/aci.
NODE_SELECTOR = {
    "kubernetes.io/role": "agent",
    "kubernetes.io/os": "linux",
    "type": "virtual-kubelet",
}
TOLERATIONS = [
    {"key": "virtual-kubelet.io/provider", "operator": "Exists"},
    {"key": "azure.com/aci", "effect": "NoSchedule"},
]

_PREFIX = "vnb-"
_HASH_LEN = 10
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_HYPHENS = re.compile(r"-{2,}")


@dataclass(frozen=True)
class JobMeta:
    """What the queue says about a request, carried into the Job's annotations."""

    key: str
    message_id: str
    enqueued_at: datetime | None
    traceparent: str | None = None
    """The request's trace (``ANN_TRACEPARENT``), when it has one."""
    tracestate: str | None = None
    """Its W3C ``tracestate``, carried through deferrals (not onto the Job)."""

    @property
    def trace(self) -> Trace:
        return Trace(self.traceparent, self.tracestate) if self.traceparent else NONE


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:_HASH_LEN]


def job_name(key: str, *, settings: Settings) -> str:
    """The Job name of an idempotency key in the configured namespace: ``vnb-<slug>-<hash>``.

    At most ``settings.job_name_budget`` characters (42 in the namespace ``vnode-batch`` with
    VNB_MAX_COMPLETIONS=100, 45 with 1), so that every pod's ACI container group ``<namespace>-<pod>`` fits
    63 characters; see ``Settings.job_name_budget``. Stable for a key and these settings.
    """
    return job_name_within(key, settings.job_name_budget)


def job_name_within(key: str, budget: int) -> str:
    """``vnb-<slug>-<hash>`` in at most ``budget`` (≥ 14) characters.

    The slug is the key lowercased, anything outside ``[a-z0-9-]`` and every run of hyphens
    made one hyphen, cut to fit and never ending in ``-``: ACI refuses container-group names
    with two hyphens in a row (Azure naming rules for Microsoft.ContainerInstance), and the
    name sits inside ``<namespace>-<job>-<index>-<random>``. The hash of the exact key keeps
    names unique when two keys slugify alike ("A_1" vs "a-1") or are cut alike.
    """
    digest = key_hash(key)
    room = min(budget, 63) - len(_PREFIX) - 1 - _HASH_LEN
    slug = _HYPHENS.sub("-", _NOT_DNS.sub("-", key.lower())).strip("-")
    slug = slug[: max(room, 0)].rstrip("-")
    return f"{_PREFIX}{slug}-{digest}" if slug else f"{_PREFIX}{digest}"


@dataclass(frozen=True)
class Resources:
    """CPU and memory of a request: as asked (None: the setting's default) and as ACI gets them.

    Applied values are on ACI's steps (10m CPU, 100 MB decimal memory), rounded up, so the
    virtual node passes them on unchanged with request == limit (shared.base.quantity.aci_cpu/aci_memory).
    """

    cpu_requested: str | None
    cpu: str
    memory_requested: str | None
    memory: str

    def as_dict(self) -> dict[str, dict[str, str | None]]:
        return {
            "cpu": {"requested": self.cpu_requested, "applied": self.cpu},
            "memory": {"requested": self.memory_requested, "applied": self.memory},
        }

    def describe(self) -> list[str]:
        """One line per resource saying what was applied and why (``cli render`` prints them)."""
        return [
            _describe("cpu", self.cpu_requested, self.cpu, parse_cpu, "vCPU in steps of 10m", "VNB_DEFAULT_CPU"),
            _describe(
                "memory",
                self.memory_requested,
                self.memory,
                parse_memory,
                "memory in 0.1 GB (decimal) steps",
                "VNB_DEFAULT_MEMORY",
            ),
        ]


def _describe(
    what: str, requested: str | None, applied: str, parse: Callable[[str], object], step: str, setting: str
) -> str:
    if requested is None:
        return f"{what}: {applied} (the default, {setting}, on ACI's step)"
    if parse(requested) == parse(applied):
        return f"{what}: {applied} (as requested)"
    return f"{what}: {applied} (requested {requested}; ACI takes {step}, rounded up)"


def resources_for(request: BatchRequest, settings: Settings) -> Resources:
    """What the request asked for and what the manifest will carry (requests = limits)."""
    cpu = aci_cpu(parse_cpu(request.cpu) if request.cpu else settings.default_cpu)
    memory = aci_memory(parse_memory(request.memory) if request.memory else settings.default_memory)
    return Resources(
        cpu_requested=None if request.cpu is None else str(request.cpu),
        cpu=format_cpu(cpu),
        memory_requested=None if request.memory is None else str(request.memory),
        memory=format_memory_decimal(memory),
    )


def literal_env_value(value: str) -> str:
    """``value`` written so the container receives it unchanged.

    virtual-kubelet resolves env values like the kubelet (internal/podutils/env.go
    makeEnvironmentMap with internal/expansion Expand):
    ``$$`` becomes ``$`` and ``$(NAME)`` becomes NAME's value. Doubling every ``$`` makes
    each one literal: ``s3cr$$t`` is written ``s3cr$$$$t`` and arrives as ``s3cr$$t``.
    """
    return value.replace("$", "$$")


def build_job(request: BatchRequest, meta: JobMeta, *, settings: Settings) -> dict[str, Any]:
    """The Job manifest for one request (a plain dict, ready to POST)."""
    applied = resources_for(request, settings)
    resources = {"cpu": applied.cpu, "memory": applied.memory}
    name = job_name(meta.key, settings=settings)
    labels = {
        **(request.labels or {}),
        MANAGED_BY: MANAGER,
        LABEL_KEY_HASH: key_hash(meta.key),
    }
    if request.team:
        labels[LABEL_TEAM] = request.team
        labels[LABEL_PRIORITY] = request.priority or "normal"
    annotations = {
        ANN_KEY: meta.key,
        ANN_MESSAGE_ID: meta.message_id,
        ANN_REQUEST_HASH: request.content_hash(),
        ANN_SCHEMA: "v1",
        ANN_RESOURCES: json.dumps(applied.as_dict(), separators=(",", ":")),
    }
    if request.correlationId:
        annotations[ANN_CORRELATION_ID] = request.correlationId
    if meta.enqueued_at:
        annotations[ANN_ENQUEUED_AT] = meta.enqueued_at.isoformat().replace("+00:00", "Z")
    if meta.traceparent:
        annotations[ANN_TRACEPARENT] = meta.traceparent

    pairs = [*(request.env or {}).items(), ("VNB_REQUEST_KEY", meta.key)]
    if request.correlationId:
        pairs.append(("VNB_CORRELATION_ID", request.correlationId))
    for env_name, place in (("VNB_INPUT_PREFIX", request.input), ("VNB_OUTPUT_PREFIX", request.output)):
        if place is not None and place.prefix:  # the virtual node drops empty values (getContainers)
            pairs.append((env_name, place.prefix))
    if request.output is not None:  # where the reconciler lists the outputs (a location, never a SAS)
        annotations[ANN_OUTPUT] = f"{request.output.container}/{request.output.prefix}"
    env = [{"name": k, "value": literal_env_value(v)} for k, v in pairs]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": request.image,
        "env": env,
        "resources": {"requests": resources, "limits": dict(resources)},
    }
    if request.command:
        container["command"] = list(request.command)
    if request.args:
        container["args"] = list(request.args)

    spec: dict[str, Any] = {
        "activeDeadlineSeconds": request.timeoutSeconds or settings.default_timeout_seconds,
        "ttlSecondsAfterFinished": settings.job_ttl_seconds,
        "completions": request.completions,
        "parallelism": request.parallelism or min(request.completions, settings.max_parallelism),
        "template": {
            "metadata": {"labels": dict(labels), "annotations": {ANN_KEY: meta.key}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                # ACI container groups get no Kubernetes service env; skip the noise.
                "enableServiceLinks": False,
                "nodeSelector": dict(NODE_SELECTOR),
                "tolerations": [dict(t) for t in TOLERATIONS],
                "containers": [container],
            },
        },
    }
    if request.completions > 1:
        # Per-index retries: one bad index does not burn the others' retries, and the
        # Job's status.failedIndexes tells the reconciler exactly which indexes failed.
        spec["completionMode"] = "Indexed"
        spec["backoffLimitPerIndex"] = request.retries
        spec["maxFailedIndexes"] = request.completions
    else:
        spec["backoffLimit"] = request.retries

    manifest: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": {**labels, LABEL_STATE: STATE_UNREPORTED},
            "annotations": annotations,
            "finalizers": [FINALIZER_REPORT],
        },
        "spec": spec,
    }
    if request.secrets or request.input or request.output:
        # files from Key Vault and SAS URLs: a required Secret volume, never env (shared.secrets.files)
        mount(manifest)
    server = registry_of(request.image, settings)
    if server is not None:  # a private ACR: the app's pull Secret for it (shared.secrets.pull)
        spec["template"]["spec"]["imagePullSecrets"] = [{"name": pull_secret_name(server)}]
    return manifest
