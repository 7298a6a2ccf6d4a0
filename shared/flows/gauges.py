"""The observable gauges, sampled by the reconcile pass (issue 21): capacity in use against the
budget, requests waiting (by why and team) and the age of the oldest, and the poison queue's depth.

A pass runs every few seconds while Jobs are in flight (follow-up passes), so the samples that
cost calls (a ledger query per waiting state, a queue's metadata) are taken at most every
:data:`SAMPLE_EVERY_SECONDS` per process; the capacity gauges reuse admission's cached view
(``Admission.usage``: it lists only when its cache is stale). A failed sample is logged and
skipped: telemetry never fails a pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Final

from shared.base.times import parse_time
from shared.capacity.admission import Admission, CapacitySource
from shared.config.settings import Settings
from shared.ledger.records import Query, State
from shared.ledger.store import Ledger
from shared.telemetry import names, signals

log = logging.getLogger("vnode_batch.telemetry")

SAMPLE_EVERY_SECONDS: Final = 30.0
WAITING_SAMPLE_LIMIT: Final = 5000
"""Waiting records read per sample at most (a page of 1000 at a time); beyond it the gauge undercounts."""
_WAITING_STATES: Final = (State.WAITING_FOR_CLUSTER, State.WAITING_FOR_CAPACITY)

_last: dict[str, float] = {}
_lock = threading.Lock()


def _due(what: str, every: float) -> bool:
    with _lock:
        moment = time.monotonic()
        if moment - _last.get(what, float("-inf")) < every:
            return False
        _last[what] = moment
        return True


def capacity(view: Admission, source: CapacitySource, now: datetime) -> None:
    """``vnb.capacity.*``: what the app holds and what its budget allows (the settings' quotas)."""
    if not signals.enabled():
        return
    try:
        usage, budget = view.usage(source, now)
    except Exception as e:  # a sample is never worth failing the pass
        log.info("capacity gauges not sampled: %s", e)
        return
    for spec, value in (
        (names.CORES_USED, float(usage.cores)),
        (names.CORES_LIMIT, float(budget.cores)),
        (names.GROUPS_USED, float(usage.groups)),
        (names.GROUPS_LIMIT, float(budget.groups)),
        (names.CREATES_USED, float(usage.creates_short)),
        (names.CREATES_LIMIT, float(budget.creates_short)),
    ):
        signals.gauge(spec, [({}, value)])


def queues_and_ledger(
    settings: Settings,
    *,
    count: Callable[[str], int],
    ledger: Ledger | None,
    now: datetime,
    every: float = SAMPLE_EVERY_SECONDS,
) -> None:
    """``vnb.queue.poison.depth`` and ``vnb.requests.waiting`` / ``vnb.requests.oldest_wait``
    (at most once per ``every`` seconds in a process)."""
    if not signals.enabled() or not _due("queues", every):
        return
    try:
        depth = count(settings.poison_queue)
        signals.gauge(names.POISON_DEPTH, [({names.DESTINATION: settings.poison_queue}, depth)])
    except Exception as e:
        log.info("poison queue depth not sampled: %s", e)
    if ledger is None:
        return
    waiting: dict[tuple[str, str], int] = defaultdict(int)
    oldest: dict[str, float] = {}
    try:
        for state in _WAITING_STATES:
            token: str | None = None
            read = 0
            while read < WAITING_SAMPLE_LIMIT:
                records, token = ledger.list(Query(state=state), limit=1000, page_token=token)
                read += len(records)
                for record in records:
                    team = record.team or ""
                    waiting[(state.value, team)] += 1
                    since = parse_time(record.received_at)
                    if since is not None:
                        oldest[team] = max(oldest.get(team, 0.0), (now - since).total_seconds())
                if not token:
                    break
    except Exception as e:
        log.info("waiting requests not sampled: %s", e)
        return
    # Both reasons are always reported (0 when none wait), so a chart drops to zero, not to a gap.
    teams = {team for _, team in waiting} | {""}
    points = [
        ({names.REASON: s.value, names.TEAM: t}, waiting.get((s.value, t), 0)) for s in _WAITING_STATES for t in teams
    ]
    signals.gauge(names.WAITING, points)
    signals.gauge(names.OLDEST_WAIT, [({names.TEAM: t}, oldest.get(t, 0.0)) for t in teams])
