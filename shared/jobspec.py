"""Request → Kubernetes Job manifest for the AKS virtual node (pure: no I/O).

Like KEDA's ``generateJobs()``, this builds the object and nothing else; the Kubernetes
adapter sends it. Every manifest it renders validates against the Kubernetes OpenAPI schema
(tests check with kubernetes-validate).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.quantity import format_cpu, format_memory, parse_cpu, parse_memory
from shared.request import RESERVED_LABEL_DOMAIN, BatchRequest
from shared.settings import Settings

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "vnode-batch"
LABEL_KEY_HASH = f"{RESERVED_LABEL_DOMAIN}/key-hash"
LABEL_STATE = f"{RESERVED_LABEL_DOMAIN}/state"
STATE_UNREPORTED = "unreported"
STATE_REPORTED = "reported"
FINALIZER_REPORT = f"{RESERVED_LABEL_DOMAIN}/report"  # the reconciler removes it once the outcome event is out
ANN_KEY = f"{RESERVED_LABEL_DOMAIN}/key"
ANN_MESSAGE_ID = f"{RESERVED_LABEL_DOMAIN}/message-id"
ANN_CORRELATION_ID = f"{RESERVED_LABEL_DOMAIN}/correlation-id"
ANN_ENQUEUED_AT = f"{RESERVED_LABEL_DOMAIN}/enqueued-at"
ANN_REQUEST_HASH = f"{RESERVED_LABEL_DOMAIN}/request-hash"
ANN_SCHEMA = f"{RESERVED_LABEL_DOMAIN}/schema"
CONTAINER = "main"
VIRTUAL_NODE_NAME = "virtual-node-aci-linux"

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

# 52, not 63: an Indexed Job's pods get the hostname "<job>-<index>" and the Job controller
# copies the name into label values (≤ 63), so the name keeps room for the index suffix.
MAX_JOB_NAME = 52
_HASH_LEN = 10
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class JobMeta:
    """What the queue says about a request, carried into the Job's annotations."""

    key: str
    message_id: str
    enqueued_at: datetime | None


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:_HASH_LEN]


def job_name(key: str) -> str:
    """A stable DNS-1123 label for an idempotency key: ``vnb-<slug>-<hash>`` (≤ 52 chars).

    The hash makes names unique even when two keys slugify alike ("A_1" vs "a-1").
    """
    slug = _NOT_DNS.sub("-", key.lower()).strip("-")
    room = MAX_JOB_NAME - len("vnb-") - 1 - _HASH_LEN
    slug = slug[:room].rstrip("-")
    return f"vnb-{slug}-{key_hash(key)}" if slug else f"vnb-{key_hash(key)}"


def build_job(request: BatchRequest, meta: JobMeta, *, settings: Settings) -> dict[str, Any]:
    """The Job manifest for one request (a plain dict, ready to POST)."""
    cpu = format_cpu(parse_cpu(request.cpu) if request.cpu else settings.default_cpu)
    memory = format_memory(parse_memory(request.memory) if request.memory else settings.default_memory)
    resources = {"cpu": cpu, "memory": memory}
    name = job_name(meta.key)
    labels = {
        **(request.labels or {}),
        MANAGED_BY: MANAGER,
        LABEL_KEY_HASH: key_hash(meta.key),
    }
    annotations = {
        ANN_KEY: meta.key,
        ANN_MESSAGE_ID: meta.message_id,
        ANN_REQUEST_HASH: request.content_hash(),
        ANN_SCHEMA: "v1",
    }
    if request.correlationId:
        annotations[ANN_CORRELATION_ID] = request.correlationId
    if meta.enqueued_at:
        annotations[ANN_ENQUEUED_AT] = meta.enqueued_at.isoformat().replace("+00:00", "Z")

    env = [{"name": k, "value": v} for k, v in (request.env or {}).items()]
    env.append({"name": "VNB_REQUEST_KEY", "value": meta.key})
    if request.correlationId:
        env.append({"name": "VNB_CORRELATION_ID", "value": request.correlationId})
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

    return {
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
