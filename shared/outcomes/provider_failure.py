"""Why the virtual node could not run a pod: ACI's error, classified (pure: no I/O).

When azure-aci's ``CreatePod`` fails, virtual-kubelet marks the pod Failed with reason
``ProviderFailed`` and the error text as its message (virtual-kubelet ``node/pod.go
handleProviderError``). azure-aci returns the Azure SDK's error from the container-group
create (``pkg/client/client_apis.go CreateContainerGroup``), whose text is azcore's
``ResponseError.Error()``: the request line, ``RESPONSE <status>: …``, ``ERROR CODE: <code>``
and the JSON body (azure-sdk-for-go ``sdk/azcore/internal/exported/response_error.go``).
Older add-on releases (autorest) wrote ``… status code 503 … error code "ServiceUnavailable" …``.
Both spellings are read; the message itself is passed on unchanged.

Three classes, because each asks for something different of the user:

* ``quotaOrCapacity`` — try again later or raise a quota: ``ContainerGroupQuotaReached``
  (sent with HTTP 400, found in public bug reports), ``ServiceUnavailable`` (409/503: "the
  requested resource is not available in the location", or "container group quota … exceeded
  in region", Microsoft troubleshooting articles for ACI), throttling (HTTP 429);
* ``invalidForAci`` — the pod as written can never run on ACI: any other 400 (e.g.
  ``InvalidContainerGroupName``-style name errors, ``ResourceLimitsLessThanRequests``,
  ``ContainerLimitGreaterThanContainerGroupTotalRequest``) or an error azure-aci raised itself
  before calling ACI (no HTTP status; e.g. args without command, lifecycle hooks);
* ``other`` — anything else (authorization, ACI 5xx other than 503, timeouts and network).

The exact code list is not published as one document; unknown codes fall back on the HTTP
status, so a new quota code sent with 400 would be reported ``invalidForAci`` with ACI's own
message beside it. Not verified against a real cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

FailureClass = Literal["invalidForAci", "quotaOrCapacity", "other"]

_STATUS: Final = (re.compile(r"\bRESPONSE (\d{3})\b"), re.compile(r"\bstatus code (\d{3})\b", re.IGNORECASE))
_CODE: Final = (
    re.compile(r"\bERROR CODE: ([A-Za-z][\w.]*)"),
    re.compile(r'\berror code "([A-Za-z][\w.]*)"', re.IGNORECASE),
    re.compile(r'"code"\s*:\s*"([A-Za-z][\w.]*)"'),
    re.compile(r'\bCode="([A-Za-z][\w.]*)"'),
)
_QUOTA_CODES: Final = frozenset(
    {"ContainerGroupQuotaReached", "ServiceUnavailable", "TooManyRequests", "Throttled", "RequestThrottled"}
)
_QUOTA_WORDS: Final = ("quota", "capacity", "not available in the location", "throttl", "rate limit")
_NETWORK_WORDS: Final = (
    "timeout",
    "timed out",
    "deadline exceeded",
    "connection refused",
    "connection reset",
    "no such host",
)


@dataclass(frozen=True)
class ProviderFailure:
    """ACI's refusal of a pod: its class, ACI's error code and HTTP status when given, and the message."""

    failure_class: FailureClass
    code: str | None
    status: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"class": self.failure_class, "code": self.code, "status": self.status, "message": self.message}


def classify(message: str) -> ProviderFailure:
    """Classify a ``ProviderFailed`` pod's message (see the module docstring for the rules)."""
    status = next((int(m.group(1)) for rx in _STATUS if (m := rx.search(message))), None)
    code = next((m.group(1) for rx in _CODE if (m := rx.search(message))), None)
    lowered = message.lower()
    kind: FailureClass
    if status in (429, 503) or code in _QUOTA_CODES or (code is not None and "quota" in code.lower()):
        kind = "quotaOrCapacity"
    elif status in (400, 422) or (code is not None and code.startswith("Invalid")):
        kind = "invalidForAci"
    elif any(w in lowered for w in _QUOTA_WORDS) and (status is None or code is None):
        kind = "quotaOrCapacity"  # the words, when ACI's answer did not say otherwise
    elif status is None and code is None and message.strip() and not any(w in lowered for w in _NETWORK_WORDS):
        # azure-aci refused the pod itself before calling ACI (pkg/provider/aci.go getContainers:
        # errdefs.InvalidInput "ACI does not support …"), or could not read its pull secret.
        kind = "invalidForAci"
    else:
        kind = "other"
    return ProviderFailure(failure_class=kind, code=code, status=status, message=message)
