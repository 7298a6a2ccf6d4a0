"""Container environment on the virtual node: virtual-kubelet's resolution, azure-aci's filter,
ACI's name rule.

Sources:
- virtual-kubelet/virtual-kubelet ``internal/podutils/env.go`` (``PopulateEnvironmentVariables``,
  ``makeEnvironmentMap``, ``getEnvironmentVariableValue*``), run by ``node/pod.go
  createOrUpdatePod`` before the provider's ``CreatePod``:
  * ``envFrom`` first, then ``env`` in order; a literal ``value`` is expanded with
    ``internal/expansion/expand.go Expand`` against the variables defined so far plus the service
    variables (``$$`` → ``$``, ``$(NAME)`` → its value, an undefined ``$(NAME)`` stays as is);
  * ``fieldRef`` reads the pod through ``helper.go ExtractFieldPathAsString``: ``metadata.*``,
    ``spec.nodeName`` and ``spec.serviceAccountName`` only; any other path (``status.podIP``,
    ``status.hostIP``, ``status.phase``) is an "unsupported fieldPath" error, so the pod stays
    ``Pending`` (/work/shared/reference/virtual-node.md "Downward API"; a kubelet would give the
    value); ``resourceFieldRef`` yields nothing (TODO in the source) so the variable is dropped;
  * a missing ConfigMap/Secret is skipped when ``optional``, else the resolution fails and the pod
    is retried: it stays ``Pending`` (the error is returned before ``CreatePod``, so
    ``handleProviderError`` never runs);
  * the master ``kubernetes`` service's variables are added even with ``enableServiceLinks:
    false`` (``getServiceEnvVarMap``; names from ``internal/podutils/envvars.go FromServices``).
    The stand-in has no Services, ConfigMaps or Secrets beyond that master service.
- virtual-kubelet/azure-aci ``pkg/provider/aci.go getContainers``: only variables whose value is
  not empty are sent (``if e.Value != ""``).
- ACI ``InvalidContainerEnvironmentVariable`` (HTTP 400): names must start with a letter or ``_``
  followed by letters, digits or ``_``; message as quoted in Azure/azure-cli#21047. (The ACI
  troubleshooting page also lists 1–63 characters; the error text does not, so length is not
  enforced here.)
- ``command``/``args`` are passed to ACI as they are (``getCommand``): no ``$(VAR)`` expansion,
  unlike the kubelet. See ``pod_script`` for how the stand-in's containers use them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from devtools.standins.virtual_node.errors import Refusal, arm_error

KUBERNETES_SERVICE_HOST = "10.0.0.1"
# FromServices for the default/kubernetes Service (ClusterIP 10.0.0.1, port "https" 443/TCP).
SERVICE_ENV = {
    "KUBERNETES_SERVICE_HOST": KUBERNETES_SERVICE_HOST,
    "KUBERNETES_SERVICE_PORT": "443",
    "KUBERNETES_SERVICE_PORT_HTTPS": "443",
    "KUBERNETES_PORT": f"tcp://{KUBERNETES_SERVICE_HOST}:443",
    "KUBERNETES_PORT_443_TCP": f"tcp://{KUBERNETES_SERVICE_HOST}:443",
    "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
    "KUBERNETES_PORT_443_TCP_PORT": "443",
    "KUBERNETES_PORT_443_TCP_ADDR": KUBERNETES_SERVICE_HOST,
}
_ACI_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELD = re.compile(r"metadata\.(labels|annotations)\['(.+)'\]")


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """Kubernetes ``$(VAR)`` expansion (``internal/expansion/expand.go Expand``)."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1 :]
            if rest[0] == "$":
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    out.append(mapping(rest[1:close]))
                    advance = close + 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def _field_value(pod: Mapping[str, Any], path: str) -> str:
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    m = _FIELD.fullmatch(path)
    if m:
        return str((md.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": md.get("name"),
        "metadata.namespace": md.get("namespace"),
        "metadata.uid": md.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
    }
    return str(simple.get(path) or "")


_SUPPORTED_FIELDS = frozenset(
    {"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName"}
)
"""Paths virtual-kubelet's ``ExtractFieldPathAsString`` answers without an error."""


def resolve_env(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, str] | Refusal:
    """The variables virtual-kubelet resolves for ``container`` (before azure-aci's filter), or
    the error that keeps the pod ``Pending`` (``Refusal.stuck``)."""
    res: dict[str, str] = {}
    pod_name = (pod.get("metadata") or {}).get("name", "")
    for src in container.get("envFrom") or []:
        ref = src.get("configMapRef") or src.get("secretRef")
        if ref is None:
            continue
        if not ref.get("optional"):
            kind = "configmap" if "configMapRef" in src else "secret"
            return Refusal("EnvFromNotFound", f'{kind} "{ref.get("name")}" not found', stuck=True)

    def mapping(name: str) -> str:
        if name in res:
            return res[name]
        if name in SERVICE_ENV:
            return SERVICE_ENV[name]
        return f"$({name})"

    for e in container.get("env") or []:
        name = str(e.get("name", ""))
        source = e.get("valueFrom")
        if source is None:
            res[name] = expand(str(e.get("value") or ""), mapping)
            continue
        if source.get("fieldRef") is not None:
            path = str(source["fieldRef"].get("fieldPath", ""))
            if path not in _SUPPORTED_FIELDS and not _FIELD.fullmatch(path):
                return Refusal("UnsupportedFieldPath", f"unsupported fieldPath: {path}", stuck=True)
            res[name] = _field_value(pod, path)
        elif source.get("configMapKeyRef") is not None or source.get("secretKeyRef") is not None:
            kind, ref = (
                ("configmap", source["configMapKeyRef"])
                if source.get("configMapKeyRef") is not None
                else ("secret", source["secretKeyRef"])
            )
            if not ref.get("optional"):
                return Refusal(
                    "EnvVarSourceNotFound", f'{kind} "{ref.get("name")}" not found (pod {pod_name})', stuck=True
                )
        # resourceFieldRef and unknown sources: no value, the variable is dropped.
    for k, v in SERVICE_ENV.items():
        res.setdefault(k, v)
    return res


def aci_env(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, str] | Refusal:
    """The variables ACI receives for ``container``: resolved, empty values dropped."""
    env = resolve_env(pod, container)
    if isinstance(env, Refusal):
        return env
    return {k: v for k, v in env.items() if v != ""}


def env_name_refusal(cg_name: str, container_name: str, env: Mapping[str, str]) -> Refusal | None:
    for name in env:
        if not _ACI_ENV_NAME.fullmatch(name):
            return arm_error(
                400,
                "InvalidContainerEnvironmentVariable",
                f"The environment variable name in container '{container_name}' of container group '{cg_name}' is "
                "invalid. A valid environment variable name must start with alphabetic character or '_', followed "
                "by a string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName').",
            )
    return None
