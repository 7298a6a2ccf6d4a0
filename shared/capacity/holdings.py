"""What the app's pods hold now, in all and by team: GET /api/summary's ``inUse`` numbers.

Two list calls (the app's unreported Jobs — the only ones that can still hold container groups —
and its pods), read through ``shared.capacity.model.usage_of`` exactly as admission reads them,
so the summary shows what admission counts against the budget, not what the ledger believes.
"""

from __future__ import annotations

from datetime import datetime

from shared.capacity.admission import SELECT_HOLDING, SELECT_MINE, CapacitySource, listed
from shared.capacity.fairshare import Held
from shared.capacity.model import usage_of
from shared.capacity.teamview import held_by_label


def holdings_of(
    source: CapacitySource, *, now: datetime, windows: tuple[int, int]
) -> tuple[Held, dict[str | None, Held]]:
    """(what all the app's pods hold, by team label — None: Jobs of no team). Raises the
    adapter's ``VnbError`` when the Kubernetes API does not answer."""
    jobs = listed(source, SELECT_HOLDING)
    pods = source.list_pods(label_selector=SELECT_MINE)
    usage = usage_of(jobs, pods, now=now, windows=windows)
    return Held(usage.cores, usage.groups), held_by_label(jobs, pods, now=now, windows=windows)
