"""What a request's workload needs besides its image, made ready at dispatch before its Job exists:
the pull Secret of its private registry (fresh), its Key Vault files and its blob SAS URLs (in the
per-request Secret). And on the reconcile timer: pull Secrets renewed long before they expire, and
the outputs a finished Job wrote, for its event.

Every value here (refresh tokens, SAS URLs, Key Vault values) goes into a Kubernetes Secret and
nowhere else: errors name registries, containers and roles, never a token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.adapters.acr import RegistryAccessDenied, TokenExchange, exchange_for
from shared.adapters.blobs import DataAccessDenied, DataAccount, account_for
from shared.adapters.kube import AlreadyExists, Cluster
from shared.base.conventions import ANN_OUTPUT
from shared.base.errors import FieldError, PermanentError, VnbError
from shared.config.settings import Settings
from shared.flows import secret_files
from shared.intake.request import BatchRequest
from shared.secrets import pull
from shared.secrets.files import INPUT_URL, OUTPUT_URL
from shared.telemetry import names, signals

log = logging.getLogger("vnode_batch.access")

SAS_MARGIN = timedelta(minutes=30)
"""Beyond the Job's deadline: the pod may wait for its container group (VNB_PENDING_TIMEOUT_SECONDS)."""
OUTPUT_NAMES = 20
"""How many output blob names an event carries (count and bytes cover them all)."""


@dataclass(frozen=True)
class Refused:
    """The request can never run as asked: ``request.rejected`` with ``reason``."""

    reason: str
    errors: list[FieldError]


@dataclass
class Prepared:
    files: dict[str, str] = field(default_factory=dict)
    pull_server: str | None = None


def prepare(
    request: BatchRequest,
    manifest: Mapping[str, Any],
    *,
    settings: Settings,
    cluster: Cluster,
    now: datetime,
    tokens: Callable[[str], TokenExchange] = exchange_for,
    data: Callable[[str], DataAccount] = account_for,
) -> Prepared | Refused:
    """Make the pull Secret fresh and gather the per-request files. Raises TransientError to retry."""
    prepared = Prepared(pull_server=pull.registry_of(request.image, settings))
    if prepared.pull_server is not None:
        try:
            ensure_pull_secret(
                cluster, prepared.pull_server, settings=settings, now=now, tokens=tokens(prepared.pull_server)
            )
        except RegistryAccessDenied as e:
            return Refused("RegistryAccessDenied", [FieldError("image", str(e))])
    if request.secrets:
        values = secret_files.read_values(request, settings)
        if isinstance(values, list):
            return Refused("SecretUnavailable", values)
        prepared.files.update(values)
    if request.input or request.output:
        assert settings.data_account_url is not None  # the request schema refuses data without an account
        account = data(settings.data_account_url)
        deadline = int(manifest["spec"].get("activeDeadlineSeconds") or settings.default_timeout_seconds)
        expiry = now + timedelta(seconds=deadline) + SAS_MARGIN
        try:
            for name, place, write in ((INPUT_URL, request.input, False), (OUTPUT_URL, request.output, True)):
                if place is not None:
                    prepared.files[name] = account.container_sas_url(
                        place.container, write=write, expiry=expiry, now=now
                    )
        except DataAccessDenied as e:
            return Refused("DataUnavailable", [FieldError("output" if request.output else "input", str(e))])
    return prepared


def ensure_pull_secret(
    cluster: Cluster, server: str, *, settings: Settings, now: datetime, tokens: TokenExchange
) -> bool:
    """Make the pull Secret of ``server`` fresh (more than ``pull.RENEW_BEFORE`` left): a missing or
    stale one is minted anew. Returns whether it was. Raises RegistryAccessDenied / TransientError."""
    name = pull.secret_name(server)
    if pull.fresh(cluster.get_secret(name), now):
        return False
    try:
        token = tokens.refresh_token(server)
    except VnbError as e:  # refused or out of reach: the "credential refresh failing" alert counts these
        signals.add(names.CREDENTIAL_FAILURES, 1, {names.CREDENTIAL: "acr", names.REASON: type(e).__name__})
        raise
    body = pull.pull_secret(server, token.value, pull.token_end(token.value, now), namespace=settings.namespace)
    try:
        cluster.create_secret(body)
    except AlreadyExists:
        cluster.replace_secret(name, body)
    log.info("renewed the pull Secret %s of registry %s", name, server)
    return True


def renew_pull_secrets(
    cluster: Cluster, settings: Settings, now: datetime, tokens: Callable[[str], TokenExchange] = exchange_for
) -> list[str]:
    """The reconcile timer's pass: renew every registry's pull Secret that has less than
    ``pull.RENEW_BEFORE`` left. A refusal or an outage is logged (dispatch reports it per request)."""
    renewed = []
    for server in settings.acr_registries:
        try:
            if ensure_pull_secret(cluster, server, settings=settings, now=now, tokens=tokens(server)):
                renewed.append(server)
        except VnbError as e:
            level = logging.ERROR if isinstance(e, PermanentError) else logging.WARNING
            log.log(level, "could not renew the pull Secret of %s: %s", server, e)
    return renewed


def outputs_of(
    job: Mapping[str, Any], settings: Settings, data: Callable[[str], DataAccount] = account_for
) -> dict[str, Any] | None:
    """``{"container", "prefix", "count", "bytes", "names"}`` of what the Job wrote under its output
    prefix (listed with the app's identity), ``listError`` instead when it could not be listed; None
    for a Job without output."""
    where = ((job.get("metadata") or {}).get("annotations") or {}).get(ANN_OUTPUT)
    if not isinstance(where, str) or settings.data_account_url is None:
        return None
    container, _, prefix = where.partition("/")
    out: dict[str, Any] = {"container": container, "prefix": prefix}
    try:
        found = data(settings.data_account_url).list_under(container, prefix, first=OUTPUT_NAMES)
    except VnbError as e:
        log.warning("could not list the outputs of %s: %s", where, e)
        return {**out, "listError": str(e)}
    return {**out, "count": found.count, "bytes": found.bytes, "names": found.names}
