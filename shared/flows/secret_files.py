"""A request's secret files at dispatch: read from Key Vault, put in the per-request Secret before
the Job exists, handed to the Job (ownerReference) once it does; masked in log tails; leftovers
swept. The values live only in the Secret and in memory here: never in a log, event or error.

Order matters on the virtual node: azure-aci drops a secret volume whose Secret is missing unless
the volume says ``optional: false`` (``aci_volumes.go getVolumes``), and then the pod fails, so the
Secret is created first; the Job owns it afterwards so that Kubernetes' garbage collector deletes
it with the Job (background propagation of dependents).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from shared.adapters.keyvault import VaultReader, VaultSecretForbidden, VaultSecretMissing, reader_for
from shared.adapters.kube import AlreadyExists, Cluster
from shared.base.conventions import LABEL_SECRET_ROLE, MANAGED_BY, MANAGER, SECRET_ROLE_FILES
from shared.base.errors import FieldError, VnbError
from shared.base.times import parse_time
from shared.config.settings import Settings
from shared.intake.request import BatchRequest
from shared.outcomes.outcome import LogTail
from shared.secrets.files import owner_reference, redact, secret_manifest, secret_name, secret_of, values_of
from shared.telemetry import names, signals

log = logging.getLogger("vnode_batch.secrets")

SELECT_FILES = f"{MANAGED_BY}={MANAGER},{LABEL_SECRET_ROLE}={SECRET_ROLE_FILES}"
Vault = Callable[[str], VaultReader]


def read_values(
    request: BatchRequest, settings: Settings, vault: Vault = reader_for
) -> dict[str, str] | list[FieldError]:
    """File name → value for every entry of ``request.secrets``, or the field errors (a secret that
    is missing, disabled or not readable by the app's identity: retrying cannot help).
    Raises TransientError (throttling, network) for the host to retry."""
    assert settings.key_vault_url is not None  # the request schema refuses secrets without a vault
    reader = vault(settings.key_vault_url)
    values: dict[str, str] = {}
    errors: list[FieldError] = []
    for file, name in sorted((request.secrets or {}).items()):
        try:
            values[file] = reader.read(name)
        except (VaultSecretMissing, VaultSecretForbidden) as e:
            signals.add(names.CREDENTIAL_FAILURES, 1, {names.CREDENTIAL: "keyvault", names.REASON: type(e).__name__})
            errors.append(FieldError(f"secrets.{file}", str(e)))
        except VnbError as e:  # throttling, network: the host retries; counted all the same
            signals.add(names.CREDENTIAL_FAILURES, 1, {names.CREDENTIAL: "keyvault", names.REASON: type(e).__name__})
            raise
    return errors or values


def stage(cluster: Cluster, manifest: dict[str, Any], values: dict[str, str]) -> None:
    """Create the per-request Secret for the Job ``manifest``. One that exists already is kept if a
    Job owns it (a redelivery: that Job's own files), else replaced (a leftover of a crash)."""
    body = secret_manifest(job=manifest, values=values)
    name = body["metadata"]["name"]
    try:
        cluster.create_secret(body)
    except AlreadyExists:
        existing = cluster.get_secret(name)
        if existing is not None and (existing.get("metadata") or {}).get("ownerReferences"):
            return
        cluster.replace_secret(name, body)


def adopt(cluster: Cluster, manifest: dict[str, Any]) -> None:
    """Make the Job named in ``manifest`` (now created) the owner of its Secret."""
    job = cluster.get_job(manifest["metadata"]["name"])
    name = secret_of(manifest)
    if job is None or name is None:
        return
    cluster.set_secret_owner(name, owner_reference(job))


def discard(cluster: Cluster, manifest: dict[str, Any]) -> None:
    """Delete the Secret staged for a Job that was not created (refused by the API)."""
    name = secret_of(manifest)
    if name is not None:
        secret = cluster.get_secret(name)
        if secret is not None and not (secret.get("metadata") or {}).get("ownerReferences"):
            cluster.delete_secret(name)


class SecretSource(Protocol):
    def get_secret(self, name: str) -> dict[str, Any] | None: ...


def mask_tails(source: SecretSource, job: dict[str, Any], tails: Iterable[LogTail]) -> list[LogTail]:
    """The log tails with every value of the Job's per-request Secret replaced by ``***`` (the
    Secret is read only for a Job that has one)."""
    tails = list(tails)
    name = secret_of(job)
    if name is None or not tails:
        return tails
    secret = source.get_secret(name)
    values = values_of(secret) if secret is not None else []
    if not values:
        return tails
    return [replace(t, text=redact(t.text, values)) for t in tails]


def sweep(cluster: Cluster, *, now: datetime, min_age_seconds: float) -> list[str]:
    """Delete per-request Secrets no Job owns that are older than ``min_age_seconds`` (a dispatch
    that crashed between the Secret and the Job). Returns the names deleted."""
    gone = []
    for secret in cluster.list_secrets(label_selector=SELECT_FILES):
        md = secret.get("metadata") or {}
        created = parse_time(md.get("creationTimestamp"))
        if md.get("ownerReferences") or created is None or (now - created).total_seconds() < min_age_seconds:
            continue
        if cluster.delete_secret(md["name"]):
            gone.append(md["name"])
    if gone:
        log.info("deleted %d per-request Secret(s) no Job owns: %s", len(gone), ", ".join(gone))
    return gone


__all__ = ["SELECT_FILES", "adopt", "discard", "mask_tails", "read_values", "secret_name", "stage", "sweep"]
