"""How a refused container group reaches the pod: ``Refusal`` and the text virtual-kubelet writes
into ``status.message``.

Sources:
- virtual-kubelet/virtual-kubelet ``node/pod.go handleProviderError``: an error from the provider's
  ``CreatePod`` sets ``status.phase`` to ``Failed`` when ``restartPolicy`` is ``Never`` (else
  ``Pending``), ``status.reason`` to ``ProviderFailed`` and ``status.message`` to ``err.Error()``.
- virtual-kubelet/azure-aci ``pkg/client/client_apis.go CreateContainerGroup`` returns the ARM SDK's
  error unchanged; with azure-sdk-for-go ``azcore`` (v1.11, go.mod of azure-aci v1.6.4) that is a
  ``ResponseError`` whose ``Error()`` (``sdk/azcore/internal/exported/response_error.go``) is the
  request line, ``RESPONSE <code>: <status>``, ``ERROR CODE: <code>`` and the indented JSON body,
  between 80-dash separators. Errors raised inside the provider before any ARM call
  (``errdefs.InvalidInput`` in ``pkg/provider/aci.go getContainers``) are plain text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
NODE_RESOURCE_GROUP = "MC_rg-aks_aks_westus"
REGION = "westus"
_SEPARATOR = "-" * 80


@dataclass(frozen=True)
class Refusal:
    """Why the virtual node will not run a pod.

    ``code`` is ACI's error code (``ContainerGroupQuotaReached``, ``ServiceUnavailable``, …) or, for
    refusals inside azure-aci before any ARM call, ``InvalidInput`` (virtual-kubelet ``errdefs``).
    ``message`` is ACI's (or the provider's) message. ``http_status`` is the ARM response status,
    ``None`` when no ARM call was made. ``stuck`` marks errors virtual-kubelet raises before calling
    the provider (env resolution, ``node/pod.go createOrUpdatePod``): the pod is retried and stays
    ``Pending`` instead of failing.
    """

    code: str
    message: str
    http_status: int | None = None
    stuck: bool = False

    def pod_message(self, cg_name: str) -> str:
        """``status.message`` as virtual-kubelet writes it (``err.Error()``)."""
        if self.http_status is None:
            return self.message
        path = (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{NODE_RESOURCE_GROUP}"
            f"/providers/Microsoft.ContainerInstance/containerGroups/{cg_name}"
        )
        status = HTTPStatus(self.http_status)
        body = json.dumps({"error": {"code": self.code, "message": self.message}}, indent=2)
        return (
            f"PUT https://management.azure.com{path}\n{_SEPARATOR}\n"
            f"RESPONSE {status.value}: {status.value} {status.phrase}\n"
            f"ERROR CODE: {self.code}\n{_SEPARATOR}\n{body}\n{_SEPARATOR}\n"
        )


def arm_error(status: int, code: str, message: str) -> Refusal:
    return Refusal(code=code, message=message, http_status=status)


def invalid_input(message: str) -> Refusal:
    return Refusal(code="InvalidInput", message=message)


def fmt_number(value: float) -> str:
    """A number as ACI prints it in messages ('4', '1.5', '0.125')."""
    return f"{value:g}"
