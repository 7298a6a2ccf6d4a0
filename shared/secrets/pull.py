"""Pull Secrets for private Azure Container Registries (pure: builds and reads objects, no I/O).

The virtual node cannot pull with a managed identity (no ``identity`` on ACI's registry credential
in azure-aci; AKS docs: managed identities cannot be attached to virtual nodes), so the app trades
its own Entra token for an ACR refresh token (Azure/acr ``docs/AAD-OAuth.md``) and keeps it in one
``kubernetes.io/dockerconfigjson`` Secret per registry, which the Jobs name in ``imagePullSecrets``.

The shape is what azure-aci reads (``pkg/provider/aci.go getImagePullSecrets``,
``readDockerConfigJSONSecret``, ``makeRegistryCredentialFromDockerConfig``): type
``kubernetes.io/dockerconfigjson``, key ``.dockerconfigjson``, an ``auths`` entry per server with a
non-empty ``username`` (an ``identitytoken`` alone is refused) and, when ``auth`` is present, the
username and password decoded from it. The username is the null GUID: "the null GUID tells the
container registry that this is an ACR refresh token" (ACR docs, container-registry-authentication).
The token's end (the JWT's ``exp``; 3 hours per those docs) is kept in an annotation: not a secret.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.base.conventions import (
    ANN_EXPIRES_AT,
    ANN_REGISTRY,
    LABEL_SECRET_ROLE,
    MANAGED_BY,
    MANAGER,
    SECRET_ROLE_PULL,
)
from shared.base.times import parse_time
from shared.config.settings import Settings
from shared.intake.request import normalize_image

NULL_GUID = "00000000-0000-0000-0000-000000000000"
TOKEN_LIFETIME = timedelta(hours=3)
"""ACR refresh tokens live 3 hours (ACR docs, "Authenticate with an Azure container registry")."""
RENEW_BEFORE = timedelta(hours=1)
"""A pull Secret with less than this left is renewed (reconcile timer) and never used for a new Job
(dispatch): ACI pulls when the container group is created, which may wait for capacity a while."""
DOCKER_CONFIG_KEY = ".dockerconfigjson"
TYPE = "kubernetes.io/dockerconfigjson"
SELECT_PULL = f"{MANAGED_BY}={MANAGER},{LABEL_SECRET_ROLE}={SECRET_ROLE_PULL}"


def registry_of(image: str, settings: Settings) -> str | None:
    """The VNB_ACR_REGISTRIES login server ``image`` comes from, or None (a public registry)."""
    host = normalize_image(image).split("/", 1)[0]
    return host if host in settings.acr_registries else None


def secret_name(server: str) -> str:
    """``vnb-pull-<server>`` with every character a Secret name may not hold as ``-``
    (``contoso.azurecr.io`` → ``vnb-pull-contoso.azurecr.io``; ``127.0.0.1:5000`` → ``vnb-pull-127.0.0.1-5000``)."""
    return "vnb-pull-" + re.sub(r"[^a-z0-9.-]", "-", server.lower())


def pull_secret(server: str, token: str, expires_at: datetime, *, namespace: str) -> dict[str, Any]:
    """The dockerconfigjson Secret for ``server`` holding the refresh token ``token``."""
    auth = base64.b64encode(f"{NULL_GUID}:{token}".encode()).decode()
    config = {"auths": {server: {"username": NULL_GUID, "password": token, "auth": auth}}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": TYPE,
        "metadata": {
            "name": secret_name(server),
            "namespace": namespace,
            "labels": {MANAGED_BY: MANAGER, LABEL_SECRET_ROLE: SECRET_ROLE_PULL},
            "annotations": {ANN_REGISTRY: server, ANN_EXPIRES_AT: _iso(expires_at)},
        },
        "data": {DOCKER_CONFIG_KEY: base64.b64encode(json.dumps(config).encode()).decode()},
    }


def expires_at(secret: Mapping[str, Any] | None) -> datetime | None:
    """When the token in a pull Secret ends (its annotation), or None (no Secret, or not ours)."""
    if secret is None or secret.get("type") != TYPE:
        return None
    value = ((secret.get("metadata") or {}).get("annotations") or {}).get(ANN_EXPIRES_AT)
    return parse_time(value) if isinstance(value, str) else None


def fresh(secret: Mapping[str, Any] | None, now: datetime) -> bool:
    """Has the pull Secret more than RENEW_BEFORE left? (False: missing, malformed or stale.)"""
    end = expires_at(secret)
    return end is not None and end - now > RENEW_BEFORE


def token_end(token: str, now: datetime) -> datetime:
    """When an ACR refresh token ends: its JWT ``exp`` (read, not verified: the registry checks it),
    capped at now + 3 hours; now + 3 hours when it carries none."""
    cap = now + TOKEN_LIFETIME
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (IndexError, ValueError, KeyError, TypeError):
        return cap
    return min(exp, cap)


def values_of(secret: Mapping[str, Any]) -> list[str]:
    """The passwords in a pull Secret (to mask them wherever text leaves the app)."""
    try:
        config = json.loads(base64.b64decode((secret.get("data") or {}).get(DOCKER_CONFIG_KEY, "")))
        return [str(v.get("password")) for v in (config.get("auths") or {}).values() if v.get("password")]
    except (ValueError, AttributeError):
        return []


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
