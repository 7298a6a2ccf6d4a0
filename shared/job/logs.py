"""Container logs as the AKS virtual node returns them (pure: no I/O).

azure-aci's ``ListLogs`` (pkg/client/client_apis.go) asks ACI for timestamps on every call
(``Timestamps: true``), whatever the caller asked: each line of a virtual-node container's log
starts with one. A kubelet adds them only on ``timestamps=true``, which the reconciler never
asks for; removing ACI's keeps the events' log tails the same on either kind of node. The
timestamp format is not documented; an RFC 3339 time followed by one space is removed, any
other line is left as it is.
"""

from __future__ import annotations

import re
from typing import Final

_TIMESTAMP: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}) ", re.MULTILINE)


def strip_timestamps(text: str) -> str:
    """``text`` without the timestamp the virtual node put at the start of each line."""
    return _TIMESTAMP.sub("", text)
