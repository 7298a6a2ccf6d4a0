"""Every label, annotation, finalizer and fixed name the app puts on Kubernetes objects (one home).

After kopf's ``_cogs/configs/conventions.py``: the lowest floor, because intake (the reserved
label domain), the renderer, the outcome readers, capacity and the cluster plans all read them.
"""

from __future__ import annotations

from typing import Final

RESERVED_LABEL_DOMAIN: Final = "vnode-batch.io"
"""The app's own label/annotation domain: request labels may not use it."""

JOB_CONTROLLER_LABELS: Final = frozenset({"job-name", "controller-uid"})
"""Unprefixed pod-template labels the Job controller sets itself (with batch.kubernetes.io/job-name
and batch.kubernetes.io/controller-uid); the batch API refuses a template giving them other
values (kubernetes pkg/registry/batch/job/strategy.go generateSelector, then
pkg/apis/batch/validation validateGeneratedSelector)."""

# --- labels ------------------------------------------------------------------------------------
REQUEST_LABEL_PREFIXES: Final = {
    "": None,
    "app.kubernetes.io": frozenset({"name", "instance", "version", "component", "part-of"}),
}
"""The label prefixes a request may use on its Job and pods (an allowlist: anything else is refused),
each with the names allowed under it (None: any name). Unprefixed names are the user's own. Of
the recommended ``app.kubernetes.io/*`` labels (Kubernetes docs "Recommended Labels") all but
``managed-by``, which the app sets. Other prefixes are refused because other systems act on
them: ``kubernetes.io``/``k8s.io`` are reserved for Kubernetes components (docs "Labels and
Selectors"), ``azure.workload.identity/use`` makes the workload identity webhook inject a
token, ``istio.io/rev`` and ``sidecar.istio.io/*`` select a mesh sidecar, ``virtual-kubelet.io/*``
is read by the virtual node, and ``vnode-batch.io`` is the app's own."""

MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGER: Final = "vnode-batch"
LABEL_KEY_HASH: Final = f"{RESERVED_LABEL_DOMAIN}/key-hash"
LABEL_STATE: Final = f"{RESERVED_LABEL_DOMAIN}/state"
LABEL_TEAM: Final = f"{RESERVED_LABEL_DOMAIN}/team"
"""The team a Job runs for (VNB_TEAMS_FILE), on the Job and its pods: capacity admission counts
what each team holds by it."""
LABEL_PRIORITY: Final = f"{RESERVED_LABEL_DOMAIN}/priority"
STATE_UNREPORTED: Final = "unreported"
STATE_REPORTED: Final = "reported"
LABEL_SECRET_ROLE: Final = f"{RESERVED_LABEL_DOMAIN}/secret"
"""On the Secrets the app makes: ``files`` (a request's secret files, owned by its Job) or
``pull`` (a registry's pull Secret, one per VNB_ACR_REGISTRIES entry, shared by the Jobs)."""
SECRET_ROLE_FILES: Final = "files"  # noqa: S105 - a label value, not a password
SECRET_ROLE_PULL: Final = "pull"  # noqa: S105 - a label value, not a password
ANN_REGISTRY: Final = f"{RESERVED_LABEL_DOMAIN}/registry"
"""On a pull Secret: the registry login server it is for."""
ANN_EXPIRES_AT: Final = f"{RESERVED_LABEL_DOMAIN}/expires-at"
"""On a pull Secret: when the refresh token inside stops working (RFC 3339, UTC): not a secret."""
NAMESPACE_LABELS: Final = {
    MANAGED_BY: MANAGER,
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}
"""Labels of the app's namespace. Pod Security Admission (kubernetes.io/docs/concepts/security/
pod-security-admission, pod-security-standards): ``baseline`` is enforced, so nothing in the
namespace may be privileged or use host namespaces, host paths, host ports or added capabilities,
which the Job pods the app renders (shared/job/render.py: no securityContext, no volumes, no
service-account token) never need. ``restricted`` is only warned and audited: it requires
``runAsNonRoot: true``, and requests run arbitrary images, many of which run as root (the
sample's azurelinux base image does), so enforcing it would refuse ordinary requests."""
ARM_TAGS: Final = {"managed-by": "vnode-batch"}
"""Tags on what the bootstrap creates, so an operator can tell it from hand-made resources."""

# --- finalizers --------------------------------------------------------------------------------
FINALIZER_REPORT: Final = f"{RESERVED_LABEL_DOMAIN}/report"
"""The reconciler removes it once the outcome event is out."""

# --- annotations -------------------------------------------------------------------------------
ANN_KEY: Final = f"{RESERVED_LABEL_DOMAIN}/key"
ANN_MESSAGE_ID: Final = f"{RESERVED_LABEL_DOMAIN}/message-id"
ANN_CORRELATION_ID: Final = f"{RESERVED_LABEL_DOMAIN}/correlation-id"
ANN_ENQUEUED_AT: Final = f"{RESERVED_LABEL_DOMAIN}/enqueued-at"
ANN_REQUEST_HASH: Final = f"{RESERVED_LABEL_DOMAIN}/request-hash"
ANN_SCHEMA: Final = f"{RESERVED_LABEL_DOMAIN}/schema"
ANN_RESOURCES: Final = f"{RESERVED_LABEL_DOMAIN}/resources"
"""JSON ``{"cpu": {"requested", "applied"}, "memory": {...}}``: what was asked and what ACI gets."""
ANN_REQUEST: Final = f"{RESERVED_LABEL_DOMAIN}/request"
"""The request as it came off the queue (compact JSON): what goes back to the queue when ACI
refuses the Job's pods for capacity. Annotations hold up to 256 KiB; a queue message 64 KiB."""
ANN_CAPACITY_ATTEMPT: Final = f"{RESERVED_LABEL_DOMAIN}/capacity-attempt"
"""How many times ACI had refused this request for capacity when this Job was created (0 first)."""
ANN_REQUEUED: Final = f"{RESERVED_LABEL_DOMAIN}/capacity-requeued"
"""Set by the reconciler (compare-and-swap) before it gives the request back to the queue: this
Job is condemned, and a message of a later attempt waits until it is gone."""
ANN_SECRET: Final = f"{RESERVED_LABEL_DOMAIN}/secret"
"""On a Job: the name of its per-request Secret (secret files), whose values the reconciler masks
in log tails before they go into an event."""
ANN_OUTPUT: Final = f"{RESERVED_LABEL_DOMAIN}/output"
"""On a Job: ``<container>/<prefix>`` of its request's ``output`` in the data account, listed by the
reconciler into ``job.succeeded``/``job.failed`` (a location, never a SAS)."""
ANN_VERDICT: Final = f"{RESERVED_LABEL_DOMAIN}/verdict"
"""JSON ``{"reason", "message", "at"}``: a failure the reconciler decided (stuck or lost)."""
ANN_TRACEPARENT: Final = f"{RESERVED_LABEL_DOMAIN}/traceparent"
"""The W3C ``traceparent`` of the request's trace (issue 21): the reconciler's run and report spans
name it as their parent, so the request's whole life is one trace (``shared.telemetry.signals``)."""
ANN_REPORTED_AT: Final = f"{RESERVED_LABEL_DOMAIN}/reported-at"
"""When the completion event was sent; a kept Job is deleted VNB_KEEP_FINISHED_SECONDS later."""

# --- set by Kubernetes (read only) ---------------------------------------------------------------
CONTROLLER_UID: Final = "batch.kubernetes.io/controller-uid"
COMPLETION_INDEX: Final = "batch.kubernetes.io/job-completion-index"
JOB_TRACKING_FINALIZER: Final = "batch.kubernetes.io/job-tracking"
"""The Job controller puts it on every pod it creates and removes it only after the pod's end is
in ``status.uncountedTerminatedPods`` (kubernetes pkg/controller/job/job_controller.go
``trackJobStatusAndRemoveFinalizers``): a finished pod that still has it and is not listed there is
not in the Job's status yet."""

# --- fixed names -------------------------------------------------------------------------------
CONTAINER: Final = "main"
VIRTUAL_NODE_NAME: Final = "virtual-node-aci-linux"
"""The node the AKS virtual-node add-on registers (aciConnectorLinux)."""
