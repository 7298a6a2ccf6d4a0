"""The log tails an outcome event carries, read before anything is deleted (ACI keeps little,
and nothing once the container group is gone).

A log read goes through the API server to the node: on the virtual node that is virtual-kubelet
and azure-aci's ``ListLogs``. The API server passes the node's error through (a dial failure is a
500; virtual-kubelet answers 500 for anything but NotFound/InvalidInput; newer azure-aci returns
the raw Azure error, ARM throttling included: /work/shared/reference/kubernetes-jobs.md). The
outcome never depends on the log, so a failed read is an entry without text that says why
(``logTail[].unavailable``), never a reason to hold back the report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from shared.base.errors import VnbError
from shared.config.settings import Settings
from shared.flows.jobstore import JobStore
from shared.job.logs import strip_timestamps
from shared.outcomes.outcome import LogSource, LogTail, cut_tail

log = logging.getLogger("vnode_batch.reconcile")

LOG_FETCH_FLOOR_BYTES = 16 * 1024
"""ACI keeps 16 KB of a stopped container's log: ask for all of it, keep the end locally."""
MAX_LOG_ERROR_CHARS = 300
"""The part of a failed log read's error an event carries in ``logTail[].unavailable``."""


def read_log_tails(jobs: JobStore, settings: Settings, sources: Sequence[LogSource]) -> list[LogTail]:
    """One :class:`LogTail` per source that has a log or whose read failed (``unavailable`` set);
    a pod with no log (never started, gone: ``pod_log`` returns None) gets none. Each text is the
    last VNB_LOG_TAIL_BYTES bytes (at most VNB_LOG_TAIL_LINES lines), ACI's timestamps removed.
    Raises nothing for a failed read."""
    tails = []
    for source in sources:
        try:
            text = jobs.pod_log(
                source.pod,
                tail_lines=settings.log_tail_lines,
                limit_bytes=max(settings.log_tail_bytes * 4, LOG_FETCH_FLOOR_BYTES),
                container=source.container,
            )
        except VnbError as e:
            why = clip(str(e).split(" returned ", 1)[-1], MAX_LOG_ERROR_CHARS)
            log.warning("log of pod %s not read (%s); reported without it", source.pod, why)
            tails.append(LogTail(source.pod, source.container, source.index, "", False, unavailable=why))
            continue
        if text is None:
            continue  # never started, or already gone: the event says what it can
        if source.on_aci:
            text = strip_timestamps(text)
        kept, cut = cut_tail(text, settings.log_tail_bytes)
        tails.append(LogTail(pod=source.pod, container=source.container, index=source.index, text=kept, truncated=cut))
    return tails


def clip(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, keeping its start and its end (where a proxied
    error names its cause, e.g. ARM's "429 Too Many Requests")."""
    if len(text) <= limit:
        return text
    head = limit // 3
    return f"{text[:head]} … {text[-(limit - head - 3) :]}"
