"""Pod features azure-aci refuses, and those it silently drops.

Sources (virtual-kubelet/azure-aci ``pkg/provider``):
- ``aci.go getContainers``: ``args`` without ``command``, lifecycle hooks (``hasLifecycleHook``:
  a ``postStart``/``preStop`` with exec, httpGet or tcpSocket) and ``startupProbe`` are refused with
  ``errdefs.InvalidInput``; ``getProbe`` refuses a liveness/readiness probe with both or neither
  of ``exec``/``httpGet``.
- ``aci.go getInitContainers`` (init containers, behind the ``InitContainerFeature`` flag since
  v1.5): refuses ports, resources, liveness/readiness/startup probes and lifecycle hooks.
- ``aci.go getImagePullSecrets`` (``pull_credentials``): each ``imagePullSecrets`` Secret is read from
  the lister (missing: the lister's ``secret "<name>" not found``); only ``kubernetes.io/dockercfg``
  and ``kubernetes.io/dockerconfigjson`` are read ("image pull secret type is not one of …");
  ``readDockerConfigJSONSecret`` needs the ``.dockerconfigjson`` key ("no dockerconfigjson present in
  secret") and a non-empty ``auths`` ("malformed dockerconfigjson in secret");
  ``makeRegistryCredentialFromDockerConfig`` needs a ``username`` ("no username present in auth config
  for server: <server>") and, when ``auth`` is set, takes username and password from it. Each entry
  becomes an ACI ``ImageRegistryCredential{server, username, password}``.
- ``aci_volumes.go getVolumes``: supported volume types are Azure Files (in-tree or the
  ``file.csi.azure.com`` CSI driver), emptyDir, gitRepo, secret, configMap and projected; any other
  type is refused. A secret/configMap volume whose object is missing is refused only when
  ``optional: false`` is explicit, else dropped. Azure Files needs its Secret: refused here.
- Dropped without an error (read nowhere in ``CreatePod``/``getContainers``): ``securityContext``
  (pod and container), ``workingDir``, ``hostNetwork``/``hostPID``/``hostIPC``, ``hostAliases``,
  ``runtimeClassName``, pod ``activeDeadlineSeconds`` (the Job's deadline is enforced by the Job
  controller), resource names other than cpu/memory/nvidia.com/gpu. ``dropped_fields`` lists them
  so a caller can tell a user what the virtual node will ignore.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from devtools.standins.virtual_node.errors import Refusal, invalid_input

AZURE_FILE_CSI = "file.csi.azure.com"
_SUPPORTED_VOLUMES = ("emptyDir", "gitRepo", "projected")


def _has_hook(c: Mapping[str, Any]) -> bool:
    lc = c.get("lifecycle") or {}
    return any(
        isinstance(lc.get(k), dict) and any(lc[k].get(h) is not None for h in ("exec", "httpGet", "tcpSocket"))
        for k in ("postStart", "preStop")
    )


def _probe_refusal(probe: Mapping[str, Any] | None) -> Refusal | None:
    if probe is None:
        return None
    has_exec, has_http = probe.get("exec") is not None, probe.get("httpGet") is not None
    if has_exec and has_http:
        return Refusal("ProviderError", 'probe may not specify more than one of "exec" and "httpGet"')
    if not has_exec and not has_http:
        return Refusal("ProviderError", 'probe must specify one of "exec" and "httpGet"')
    return None


def container_refusal(c: Mapping[str, Any]) -> Refusal | None:
    """``getContainers``' checks for one (app) container, in the source's order."""
    if not c.get("command") and c.get("args"):
        return invalid_input(
            "ACI does not support providing args without specifying the command. Please supply both command and args to the pod spec."
        )
    if _has_hook(c):
        return invalid_input("ACI does not support lifecycle hooks")
    if c.get("startupProbe") is not None:
        return invalid_input("ACI does not support startupProbe")
    return _probe_refusal(c.get("livenessProbe")) or _probe_refusal(c.get("readinessProbe"))


def init_container_refusal(c: Mapping[str, Any]) -> Refusal | None:
    if not c.get("command") and c.get("args"):
        return invalid_input(
            "ACI does not support providing args without specifying the command. Please supply both command and args to the pod spec."
        )
    res = c.get("resources") or {}
    checks = (
        (c.get("ports") is not None, "ports"),
        (res.get("requests") is not None, "resources requests"),
        (res.get("limits") is not None, "resources limits"),
        (c.get("livenessProbe") is not None, "livenessProbe"),
        (c.get("readinessProbe") is not None, "readinessProbe"),
        (_has_hook(c), "lifecycle hooks"),
        (c.get("startupProbe") is not None, "startupProbe"),
    )
    for bad, what in checks:
        if bad:
            return invalid_input(f"azure container instances initContainers do not support {what}")
    return None


SecretLookup = Callable[[str], "dict[str, str] | None"]
"""Secret name (in the pod's namespace) → its decoded data, or None when it does not exist."""


def _no_secrets(_: str) -> dict[str, str] | None:
    return None


def volume_refusal(pod: Mapping[str, Any], secrets: SecretLookup = _no_secrets) -> Refusal | None:
    name = (pod.get("metadata") or {}).get("name", "")
    for v in (pod.get("spec") or {}).get("volumes") or []:
        vname = v.get("name", "")
        if v.get("csi") is not None:
            driver = v["csi"].get("driver", "")
            if driver != AZURE_FILE_CSI:
                return Refusal(
                    "ProviderError", f"pod {name} requires volume {vname} which is of an unsupported type {driver}"
                )
            secret = (v["csi"].get("volumeAttributes") or {}).get("secretName", "")
            return Refusal("ProviderError", f"the secret {secret} for AzureFile CSI driver {vname} is not found")
        if v.get("azureFile") is not None:
            return Refusal("ProviderError", f'secrets "{v["azureFile"].get("secretName", "")}" not found')
        if any(v.get(k) is not None for k in _SUPPORTED_VOLUMES):
            continue
        if v.get("secret") is not None:
            if secrets(v["secret"].get("secretName", "")) is not None:
                continue
            if v["secret"].get("optional") is False:
                return Refusal(
                    "ProviderError",
                    f"secret {v['secret'].get('secretName', '')} is required by Pod {name} and does not exist",
                )
            continue
        if v.get("configMap") is not None:
            if v["configMap"].get("optional") is False:
                return Refusal(
                    "ProviderError",
                    f"ConfigMap {v['configMap'].get('name', '')} is required by Pod {name} and does not exist",
                )
            continue
        return Refusal("ProviderError", f"pod {name} requires volume {vname} which is of an unsupported type")
    return None


def secret_files(pod: Mapping[str, Any], container: Mapping[str, Any], secrets: SecretLookup) -> dict[str, str]:
    """Path → content of the files a container sees from its secret volumes.

    ``aci_volumes.go getVolumes``: an ACI secret volume gets the whole Secret (``items`` and
    ``defaultMode`` ignored); the container mounts it at ``mountPath`` (``subPath`` ignored,
    ``getContainers`` volume mounts). A Secret missing and optional is dropped: no files."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    files: dict[str, str] = {}
    for m in container.get("volumeMounts") or []:
        v = volumes.get(m.get("name"))
        if v is None or v.get("secret") is None:
            continue
        data = secrets(v["secret"].get("secretName", "")) or {}
        base = str(m.get("mountPath", "")).rstrip("/")
        files.update({f"{base}/{key}": value for key, value in data.items()})
    return files


SecretObjects = Callable[[str], "dict[str, Any] | None"]
Credential = tuple[str, str, str]  # server, username, password
_DOCKERCFG = "kubernetes.io/dockercfg"
_DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"


def _no_objects(_: str) -> dict[str, Any] | None:
    return None


def pull_credentials(pod: Mapping[str, Any], secrets: SecretObjects = _no_objects) -> list[Credential] | Refusal:
    """The ACI registry credentials azure-aci builds from the pod's ``imagePullSecrets`` (module doc)."""
    creds: list[Credential] = []
    for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
        name = str(ref.get("name", ""))
        secret = secrets(name)
        if secret is None:
            return Refusal("ProviderError", f'secret "{name}" not found')
        data = secret.get("data") or {}
        kind = secret.get("type")
        if kind == _DOCKERCONFIGJSON:
            raw = data.get(".dockerconfigjson")
            if raw is None:
                return Refusal("ProviderError", "no dockerconfigjson present in secret")
            auths = (_json(raw) or {}).get("auths") or {}
        elif kind == _DOCKERCFG:
            raw = data.get(".dockercfg")
            if raw is None:
                return Refusal("ProviderError", "no dockercfg present in secret")
            auths = _json(raw) or {}
        else:
            return Refusal(
                "ProviderError",
                "image pull secret type is not one of kubernetes.io/dockercfg or kubernetes.io/dockerconfigjson",
            )
        if not auths:
            return Refusal("ProviderError", "malformed dockerconfigjson in secret")
        for server, entry in auths.items():
            user, password = str(entry.get("username") or ""), str(entry.get("password") or "")
            if not user and (kind == _DOCKERCONFIGJSON or not entry.get("auth")):
                return Refusal("ProviderError", f"no username present in auth config for server: {server}")
            if entry.get("auth"):
                decoded = base64.b64decode(str(entry["auth"])).decode(errors="replace")
                user, _, password = decoded.partition(":")
            creds.append((str(server), user, password))
    return creds


def _json(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(base64.b64decode(raw))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


_DROPPED_POD = ("securityContext", "hostNetwork", "hostPID", "hostIPC", "hostAliases", "runtimeClassName")
_DROPPED_CONTAINER = ("securityContext", "workingDir")


def dropped_fields(pod: Mapping[str, Any]) -> list[str]:
    """Paths of fields the pod sets that the virtual node ignores (no error, no effect)."""
    spec = pod.get("spec") or {}
    out = [f"spec.{k}" for k in _DROPPED_POD if spec.get(k)]
    if spec.get("activeDeadlineSeconds") is not None:
        out.append("spec.activeDeadlineSeconds")
    for i, c in enumerate(spec.get("containers") or []):
        out += [f"spec.containers[{i}].{k}" for k in _DROPPED_CONTAINER if c.get(k)]
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for rname in res.get(part) or {}:
                if rname not in ("cpu", "memory", "nvidia.com/gpu"):
                    out.append(f"spec.containers[{i}].resources.{part}.{rname}")
    return out
