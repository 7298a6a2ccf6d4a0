"""The per-request Secret of files and its mount in the Job (pure: builds objects, no I/O).

Why a Secret *volume* and never ``env``: on the virtual node an env value from ``secretKeyRef``
reaches ACI as a plain value (virtual-kubelet ``node/env.go PopulateEnvironmentVariables`` resolves
it before azure-aci's ``getACIEnvVar`` sees it, so its ``SecureValue`` branch never fires), readable
in the container group's properties. A Secret volume becomes an ACI secret volume
(azure-aci ``pkg/provider/aci_volumes.go getVolumes``): the whole Secret is mounted, ``items``,
``defaultMode`` and ``subPath`` are ignored, and a missing Secret is dropped silently unless the
volume says ``optional: false`` — so the mount always says it, and the Secret exists before the Job.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from shared.base.conventions import (
    ANN_KEY,
    ANN_SECRET,
    CONTAINER,
    LABEL_KEY_HASH,
    LABEL_SECRET_ROLE,
    MANAGED_BY,
    MANAGER,
    SECRET_ROLE_FILES,
)

MOUNT_PATH = "/var/run/secrets/vnode-batch"
"""Where a request's secret files appear in its container: ``MOUNT_PATH/<file name>``."""
INPUT_URL = "VNB_INPUT_URL"
"""File of the per-request Secret: the input container's URL with a read/list SAS (request ``input``)."""
OUTPUT_URL = "VNB_OUTPUT_URL"
"""File of the per-request Secret: the output container's URL with a create/write/list SAS (``output``)."""
VOLUME = "vnb-secrets"
_SUFFIX = "-files"
MASK = "***"


def secret_name(job_name: str) -> str:
    """The per-request Secret of a Job: ``<job name>-files`` (a Job name is ≤ 45 characters)."""
    return job_name + _SUFFIX


def secret_manifest(
    *, job: Mapping[str, Any], values: Mapping[str, str], owner: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Opaque Secret holding ``values`` (file name → content) for the Job manifest ``job``.

    ``owner``: the created Job (``metadata.uid`` needed); with it the Secret carries an
    ownerReference, so the garbage collector deletes it with the Job."""
    md = job["metadata"]
    labels = {MANAGED_BY: MANAGER, LABEL_SECRET_ROLE: SECRET_ROLE_FILES}
    if LABEL_KEY_HASH in (md.get("labels") or {}):
        labels[LABEL_KEY_HASH] = md["labels"][LABEL_KEY_HASH]
    meta: dict[str, Any] = {
        "name": secret_name(md["name"]),
        "namespace": md["namespace"],
        "labels": labels,
        "annotations": {ANN_KEY: (md.get("annotations") or {}).get(ANN_KEY, "")},
    }
    if owner is not None:
        meta["ownerReferences"] = [owner_reference(owner)]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(values.items())},
    }


def owner_reference(job: Mapping[str, Any]) -> dict[str, Any]:
    """An ownerReference to the created Job ``job``: the GC deletes the Secret once the Job is gone
    (Kubernetes docs "Owners and Dependents"; background deletion of dependents)."""
    md = job["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": md["name"],
        "uid": md["uid"],
        "blockOwnerDeletion": False,
        "controller": False,
    }


def mount(manifest: dict[str, Any]) -> str:
    """Add the per-request Secret volume (``optional: false``) and its read-only mount at
    ``MOUNT_PATH`` to the Job manifest; mark the Job with the Secret's name. Returns that name."""
    name = secret_name(manifest["metadata"]["name"])
    manifest["metadata"].setdefault("annotations", {})[ANN_SECRET] = name
    pod = manifest["spec"]["template"]["spec"]
    pod.setdefault("volumes", []).append({"name": VOLUME, "secret": {"secretName": name, "optional": False}})
    for c in pod["containers"]:
        if c["name"] == CONTAINER:
            c.setdefault("volumeMounts", []).append({"name": VOLUME, "mountPath": MOUNT_PATH, "readOnly": True})
    return name


def secret_of(job: Mapping[str, Any]) -> str | None:
    """The name of the Job's per-request Secret (``mount``), or None."""
    value = ((job.get("metadata") or {}).get("annotations") or {}).get(ANN_SECRET)
    return value if isinstance(value, str) and value else None


def values_of(secret: Mapping[str, Any]) -> list[str]:
    """The decoded values of a Secret read from the API (unreadable entries skipped)."""
    out = []
    for raw in (secret.get("data") or {}).values():
        try:
            out.append(base64.b64decode(raw).decode())
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def redact(text: str, values: list[str]) -> str:
    """``text`` with every occurrence of each value (longest first, empty ones ignored) replaced by
    ``***``. Whole values and their lines: a multi-line value is also masked line by line, since a
    log tail may be cut inside it."""
    pieces = {v for v in values if v}
    pieces |= {line for v in values for line in v.splitlines() if len(line.strip()) >= 4}
    pieces |= {part for v in values for part in _sas_parts(v)}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, MASK)
    return text


def _sas_parts(value: str) -> list[str]:
    """For a SAS URL, the pieces a program may print alone: the query string and the signature
    (raw and URL-encoded), so ``***`` replaces them too."""
    if "?" not in value or "sig=" not in value:
        return []
    from urllib.parse import parse_qs, urlsplit

    query = urlsplit(value.strip()).query
    parts = [query]
    for sig in parse_qs(query).get("sig", []):
        parts.append(sig)
    parts += [p.removeprefix("sig=") for p in query.split("&") if p.startswith("sig=")]
    return [p for p in parts if len(p) >= 8]
