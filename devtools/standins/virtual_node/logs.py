"""Container logs on the virtual node.

Sources:
- ACI limits page (https://learn.microsoft.com/azure/container-instances/container-instances-resource-and-quota-limits):
  log size 4 MB for a running instance; 16 KB or 1,000 lines for a stopped one. Which end is kept
  is not stated (source silent); the model keeps the most recent output, as ``az container logs``
  shows the end of a stopped container's log.
- virtual-kubelet/azure-aci ``pkg/client/client_apis.go ListLogs``: asks ACI for timestamps on
  every call (``Timestamps: true``) and passes ``tailLines`` as ACI's ``tail``; ``limitBytes`` and
  ``timestamps=false`` are ignored, so every line starts with a timestamp. The timestamp format
  ACI uses is not documented (source silent): RFC 3339 with nanoseconds here.
"""

from __future__ import annotations

from collections.abc import Sequence

from devtools.standins.metav1_time import rfc3339_nano_of

RUNNING_BYTES = 4 * 1024 * 1024
STOPPED_BYTES = 16 * 1024
STOPPED_LINES = 1000


def _keep_last(lines: list[tuple[float, str]], max_bytes: int) -> list[tuple[float, str]]:
    total = sum(len(t.encode()) + 1 for _, t in lines)
    start = 0
    while start < len(lines) and total > max_bytes:
        total -= len(lines[start][1].encode()) + 1
        start += 1
    return lines[start:]


def aci_log(lines: Sequence[tuple[float, str]], *, stopped: bool, tail: int | None) -> str:
    """What ``GET …/log`` returns for a virtual-node container. ``lines`` are (epoch, text)."""
    kept = (
        _keep_last(list(lines)[-STOPPED_LINES:], STOPPED_BYTES) if stopped else _keep_last(list(lines), RUNNING_BYTES)
    )
    if tail is not None and tail > 0:
        kept = kept[-tail:]
    return "".join(f"{rfc3339_nano_of(at)} {text}\n" for at, text in kept)
