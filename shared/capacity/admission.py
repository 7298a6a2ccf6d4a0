"""Capacity admission: may this process create one more Job on the virtual node now?

One :class:`Admission` per process and cluster namespace holds a *view* of what the app's own
pods hold (``shared.capacity.model.usage_of`` over two list calls by label selector: the app's
unreported Jobs — the only ones that can still hold container groups, so a refresh costs what
is running, not what is kept — and its pods) and corrects it with its own admissions, so the hot
path does not list the cluster per message. The create windows also need the Jobs reported
since: their creates are remembered from earlier lists and from this process's own creates, and
the reported Jobs are listed once a minute (``FULL_LIST_SECONDS``) to learn other instances'. The view is listed again when it is older than VNB_CAPACITY_CACHE_SECONDS,
or when this process has admitted a tenth of the groups or creates budget since the last list
(``REFRESH_SHARE``) — which bounds what several instances admit past the budget between them:
each other busy instance's admissions since this one's last list, about a tenth of the budget
each (docs/operations.md, "Capacity").

The budget it believes in shrinks after ACI refuses pods for quota, capacity or throttling
(AIMD, like TCP's congestion window): cut to 70 % on a refusal — seen by the reconciler, or by
the dispatcher in its pod list — at most once per cache period and only for pods admitted after
the previous cut, then grown back by a tenth per clean refresh, until creates succeed again at
the full budget. The factor is per process.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from shared.adapters.kube import Page
from shared.base.conventions import LABEL_STATE, MANAGED_BY, MANAGER, STATE_UNREPORTED
from shared.capacity import eta, fairshare, wake
from shared.capacity.fairshare import Held
from shared.capacity.model import Budget, Demand, Usage, brief, capacity_refusal, defer_delay, job_creates, usage_of
from shared.capacity.teamview import URGENT, Shares, WaitingQueue, held_by_team, held_of, rank, shares_of, total
from shared.config.settings import Settings
from shared.teams.files import teams_for

log = logging.getLogger("vnode_batch.capacity")

SELECT_MINE = f"{MANAGED_BY}={MANAGER}"
SELECT_HOLDING = f"{MANAGED_BY}={MANAGER},{LABEL_STATE}={STATE_UNREPORTED}"
"""Jobs that may still hold container groups (reported Jobs' pods are deleted when reported)."""
FULL_LIST_SECONDS = 60.0
"""Every this often a refresh lists the reported Jobs too (for the create windows); otherwise
it remembers the creates of Jobs it saw while they were unreported."""
REFRESH_SHARE = 0.1
"""List again after admitting this share of the groups (or short-window creates) budget."""
DECREASE = 0.7
"""Share of the budget kept after a refusal (multiplicative decrease)."""
MIN_FACTOR = 1 / 16
"""The budget never shrinks below this share of the settings (and never below one Job)."""
INCREASE = 0.1
"""Share of the budget given back per clean refresh after a shrink (additive increase)."""
PAGE = 500
_SEEN_LIMIT = 10_000
_WAITING_LIMIT = 10_000
_DURATIONS_LIMIT = 1_000


class CapacitySource(Protocol):
    """The two list calls a refresh makes (``shared.adapters.kube.Cluster`` has them)."""

    def list_jobs(self, *, label_selector: str, limit: int, continue_token: str | None = None) -> Page: ...

    def list_pods(self, *, label_selector: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Decision:
    """``admitted``: create now (then call :meth:`Admission.created` or :meth:`Admission.refund`);
    else ``reason`` names the exhausted resource and ``delay`` is the visibility delay (s)."""

    admitted: bool
    reason: str = ""
    delay: int = 0
    ticket: int = 0
    queue: dict[str, Any] | None = None
    """For a waiting request: its position and estimated start (``shared.capacity.eta``)."""


@dataclass
class _Charge:
    demand: Demand
    at: datetime
    job: str
    done_at: float | None = None
    team: str = ""


@dataclass
class _View:
    usage: Usage = field(default_factory=Usage)
    listed_at: float | None = None
    teams: dict[str, Held] = field(default_factory=dict)
    """What each team's Jobs hold (``LABEL_TEAM``), from the same lists."""
    endings: list[eta.Ending] = field(default_factory=list)
    """When the running Jobs are expected to end (``shared.capacity.eta``)."""


class Admission:
    """Per-process admission for one cluster namespace (thread-safe; see the module docstring)."""

    def __init__(
        self, settings: Settings, *, clock: Callable[[], float] = time.monotonic, shares: Shares | None = None
    ) -> None:
        self._settings = settings
        self.shares: Shares = shares if shares is not None else shares_of(teams_for(settings))
        self._queue = WaitingQueue(
            ttl=3.0 * settings.capacity_defer_seconds + 2.0 * settings.capacity_cache_seconds + 1,
            slack=2.0 * settings.capacity_cache_seconds + 1,
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._view = _View()
        self._charges: dict[int, _Charge] = {}
        self._next = 0
        self.factor = 1.0
        self._shrunk_at: float | None = None
        self._shrunk_wall: datetime | None = None
        self._seen_refusals: set[str] = set()
        self._waiting: dict[str, datetime] = {}
        self._since_list = Usage()
        """What this process admitted since its last list (when to list again)."""
        self.refreshes = 0
        self._history: dict[str, tuple[datetime, int]] = {}
        """Creates of Jobs seen in lists or created here, by Job name (the create windows' memory)."""
        self._full_at: float | None = None
        self._durations: dict[str, float] = {}
        """How long the app's finished Jobs ran, by name (the estimates' observations)."""

    # --- the budget ---------------------------------------------------------------------

    def budget(self) -> Budget:
        return whole_budget(self._settings, factor=self.factor)

    def refused(self, count: int = 1, *, why: str = "", created: datetime | None = None) -> None:
        """ACI refused ``count`` pods for quota/capacity/throttling: shrink the budget.

        At most once per cache period, and not for a pod (or Job) ``created`` before the last
        shrink: it was admitted under the larger budget, which that shrink already answered
        (TCP's one decrease per round trip)."""
        with self._lock:
            self._shrink(count, why, created)

    def _shrink(self, count: int, why: str, created: datetime | None = None) -> None:
        now = self._clock()
        if self._shrunk_at is not None and now - self._shrunk_at < self._settings.capacity_cache_seconds:
            return
        if created is not None and self._shrunk_wall is not None and created <= self._shrunk_wall:
            return
        before = self.factor
        self.factor = max(MIN_FACTOR, self.factor * DECREASE)
        self._shrunk_at = now
        self._shrunk_wall = datetime.now(UTC)
        self._view.listed_at = None  # list again before the next admission
        log.warning(
            "ACI refused %d pod(s) for capacity (%s): budget shrunk from %.0f%% to %.0f%% of the settings",
            count,
            brief(why) if why else "quota, capacity or throttling",
            before * 100,
            self.factor * 100,
        )

    # --- admission ----------------------------------------------------------------------

    def admit(
        self,
        source: CapacitySource,
        demand: Demand,
        *,
        key: str,
        first_seen: datetime,
        now: datetime,
        job: str = "",
        team: str = "",
        priority: str = "normal",
        wakeable: bool = False,
    ) -> Decision:
        """Admit ``demand`` of the Job named ``job`` (charging it to this process's view until a
        list shows that Job) or say why not and how long to wait.

        ``wakeable``: the request's message can be woken by the reconciler when capacity frees
        (its handle goes to the ledger, ``shared.flows.wake``), so a wait for container groups or
        cores sleeps up to VNB_CAPACITY_SLEEP_SECONDS instead of VNB_CAPACITY_DEFER_SECONDS.

        Raises what the list calls raise (a transient Kubernetes error: the host retries)."""
        with self._lock:
            budget_ = self._listed_budget(source, now)
            usage = self._usage()
            reason = budget_.exhausted(usage, demand)
            fair = self.shares and team in self.shares
            if reason is None and fair:
                reason = self._unfair(key, team, priority, demand, usage, budget_)
            if reason is None:
                self._waiting.pop(key, None)
                self._queue.admitted(key)
                self._next += 1
                self._charges[self._next] = _Charge(demand, now, job, team=team)
                self._since_list = self._since_list.plus(demand)
                return Decision(True, ticket=self._next)
            self._queue.wait(key, team, priority, first_seen, held_of(demand), self._clock())
            queue = self._forecast(key, demand, usage, budget_, now)
            # What the reconciler's global ranking needs of it (``shared.flows.ranking``).
            queue["wants"] = {"cores": float(demand.cores), "groups": demand.groups}
            queue["priority"] = priority
            if len(self._waiting) >= _WAITING_LIMIT:
                self._waiting.pop(min(self._waiting, key=lambda k: self._waiting[k]))
            self._waiting[key] = first_seen
            waiting = list(self._waiting.values())
            window_wait = budget_.wait(usage, demand, now=now)
            longest = self._settings.capacity_defer_seconds
            if wakeable and not window_wait:
                longest = max(longest, self._settings.capacity_sleep_seconds)
            if fair:  # the team's own order (priority, then age) sets how soon it asks again
                delay = self._queue.delay(key, longest=longest)
                if window_wait:
                    delay += math.ceil(window_wait)
            elif window_wait is None:  # groups or cores: Jobs must finish first, ask again soon
                delay = defer_delay(first_seen, waiting, longest=longest)
            else:
                # A create window frees at a known time: come back then (the oldest first),
                # not every few seconds until then.
                delay = math.ceil(window_wait) + defer_delay(first_seen, waiting, longest=2) - 1
            delay = max(1, delay)
            self._queue.expect(key, back_in=delay)
            return Decision(False, reason=f"waiting for capacity: {reason}", delay=delay, queue=queue)

    def outlook(self, source: CapacitySource, now: datetime) -> tuple[list[eta.Ending], Held, int]:
        """For estimates made elsewhere (``shared.flows.ranking``): when the running Jobs are
        expected to end, what is free now, and how many finished Jobs' durations were observed.
        Lists the cluster when this process's view is stale (as :meth:`admit` does)."""
        with self._lock:
            budget_ = self._listed_budget(source, now)
            return list(self._view.endings), _free(budget_, self._usage()), len(self._durations)

    def _listed_budget(self, source: CapacitySource, now: datetime) -> Budget:
        """The budget, after listing the cluster again if the view is stale (under the lock)."""
        budget_ = self.budget()
        if self._stale(budget_):
            self._refresh(source, now)
            budget_ = self.budget()
        return budget_

    def _forecast(self, key: str, demand: Demand, usage: Usage, budget_: Budget, now: datetime) -> dict[str, Any]:
        clock = self._clock()
        place = self._queue.position(key, clock)
        out: dict[str, Any] = {}
        if place is not None:
            out = {"position": place[0], "waiting": place[1], "teamPosition": place[2], "teamWaiting": place[3]}
        out.update(
            eta.estimate(
                self._view.endings,
                free=_free(budget_, usage),
                ahead=self._queue.ahead(key, clock),
                demand=held_of(demand),
                now=now,
                observed=len(self._durations),
            )
        )
        return out

    def _unfair(self, key: str, team: str, priority: str, demand: Demand, usage: Usage, budget_: Budget) -> str | None:
        """Why fairness holds ``team``'s Job back (``shared.capacity.fairshare``), or None."""
        now = self._clock()
        ahead = self._queue.ahead_in_team(key, team, priority, now)
        if ahead:
            return f"team {team} has {ahead} waiting request(s) of higher priority"
        held = self._held_now()
        whole = _whole(budget_)
        used = Held(usage.cores, usage.groups)
        urgent = priority == URGENT
        if not urgent:  # urgent requests go first, whatever their team's level
            first = self._queue.by_team(now, exclude=key, rank_at_least=rank(URGENT))
            if first and not used.plus(held_of(demand)).plus(total(first.values())).fits(whole):
                return f"urgent request(s) of team(s) {', '.join(sorted(first))} wait"
        return fairshare.refusal(
            team,
            held_of(demand),
            used=used,
            budget=whole,
            held=held,
            waiting={} if urgent else self._queue.by_team(now, exclude=key),
            shares=self.shares,
        )

    def _held_now(self) -> dict[str, Held]:
        """By team: what its Jobs held at the last list, plus this process's admissions since."""
        held = dict(self._view.teams)
        for charge in self._charges.values():
            if charge.team:
                held[charge.team] = held.get(charge.team, Held()).plus(held_of(charge.demand))
        return held

    def standing(self, source: CapacitySource, now: datetime) -> wake.Standing:
        """What the app holds now against the budget, overall and by team, and the creates the
        tighter window has left (``shared.flows.wake``). Lists the cluster when the view is stale;
        raises what the list calls raise."""
        with self._lock:
            budget_ = self._listed_budget(source, now)
            usage = self._usage()
            creates = min(
                budget_.scaled(budget_.creates_short) - usage.creates_short,
                budget_.scaled(budget_.creates_long) - usage.creates_long,
            )
            return wake.Standing(Held(usage.cores, usage.groups), _whole(budget_), max(0, creates), self._held_now())

    def relist(self) -> None:
        """Trust the current view no longer (the caller just freed capacity: the next call lists)."""
        with self._lock:
            self._view.listed_at = None

    def usage(self, source: CapacitySource, now: datetime) -> tuple[Usage, Budget]:
        """What the app holds now (listing only when the cached view is stale) and the budget
        (the telemetry gauges, ``shared.flows.gauges``). Raises what the list calls raise."""
        budget_ = self.budget()
        with self._lock:
            if self._stale(budget_):
                self._refresh(source, now)
                budget_ = self.budget()
            return self._usage(), budget_

    def created(self, ticket: int) -> None:
        """The admitted Job was created: the next list sees it, so its charge ends then."""
        with self._lock:
            charge = self._charges.get(ticket)
            if charge is not None:
                charge.done_at = self._clock()

    def refund(self, ticket: int) -> None:
        """Nothing was created for this admission (a duplicate, a refused manifest, an error)."""
        with self._lock:
            self._charges.pop(ticket, None)

    def _usage(self) -> Usage:
        usage = self._view.usage
        for charge in self._charges.values():
            usage = usage.plus(charge.demand, charge.at)
        return usage

    def _stale(self, budget_: Budget) -> bool:
        listed = self._view.listed_at
        if listed is None or self._clock() - listed >= self._settings.capacity_cache_seconds:
            return True
        own = self._since_list
        return own.groups >= max(1, budget_.scaled(budget_.groups) * REFRESH_SHARE) or own.creates_short >= max(
            1, budget_.scaled(budget_.creates_short) * REFRESH_SHARE
        )

    @staticmethod
    def _list(source: CapacitySource, selector: str) -> list[dict[str, Any]]:
        return listed(source, selector)

    def _remember(self, job: dict[str, Any]) -> None:
        name = str((job.get("metadata") or {}).get("name") or "")
        made = job_creates(job)
        if name and made is not None:
            seen = self._history.get(name)
            # A later attempt of the same request (same name) replaces the earlier one.
            self._history[name] = made if seen is None or made >= seen else seen

    def _refresh(self, source: CapacitySource, now: datetime) -> None:
        started = self._clock()
        full = self._full_at is None or started - self._full_at >= FULL_LIST_SECONDS
        jobs = self._list(source, SELECT_HOLDING)
        if full:
            self._full_at = started
            for job in self._list(source, f"{MANAGED_BY}={MANAGER},{LABEL_STATE}!={STATE_UNREPORTED}"):
                self._remember(job)
                ran = eta.duration_of(job)
                if ran is not None:
                    self._durations[str((job.get("metadata") or {}).get("name") or "")] = ran
            while len(self._durations) > _DURATIONS_LIMIT:
                self._durations.pop(next(iter(self._durations)))
        for job in jobs:
            self._remember(job)
        horizon = now - timedelta(seconds=self._settings.capacity_window_seconds[1] * 2)
        self._history = {uid: c for uid, c in self._history.items() if c[0] >= horizon}
        pods = source.list_pods(label_selector=SELECT_MINE)
        self.refreshes += 1
        self._since_list = Usage()
        # A charge ends when the list shows its Job, or when its Job was created before this list
        # began and is not in it (already finished and deleted); in-flight creates stay charged.
        listed = {str((j.get("metadata") or {}).get("name") or "") for j in jobs}
        kept: dict[int, _Charge] = {}
        for t, c in self._charges.items():
            if c.job not in listed and (c.done_at is None or c.done_at >= started):
                kept[t] = c
            elif c.done_at is not None and c.job:
                # Created here: its creates stay in the windows even if the Job is already
                # reported (not in the list of Jobs that hold groups).
                self._history.setdefault(c.job, (c.at, c.demand.creates))
        self._charges = kept
        windows = self._settings.capacity_window_seconds
        self._view = _View(
            usage_of(jobs, pods, now=now, windows=windows, history=self._history),
            started,
            held_by_team(jobs, pods, now=now, windows=windows) if self.shares else {},
            eta.endings(jobs, now=now, durations=self._durations.values()),
        )
        refusals: list[tuple[str, datetime | None]] = []
        for pod in pods:
            meta = pod.get("metadata") or {}
            uid = str(meta.get("uid") or "")
            if uid and uid not in self._seen_refusals:
                why = capacity_refusal(pod)
                if why is not None:
                    refusals.append((why, _created(meta)))
                    self._seen_refusals.add(uid)
        if len(self._seen_refusals) > _SEEN_LIMIT:
            self._seen_refusals.clear()
        fresh = [r for r in refusals if self._shrunk_wall is None or r[1] is None or r[1] > self._shrunk_wall]
        if fresh:
            self._shrink(len(fresh), fresh[-1][0])
        elif (
            self.factor < 1
            and self._shrunk_at is not None
            and started - self._shrunk_at >= (self._settings.capacity_cache_seconds)
        ):
            self.factor = min(1.0, self.factor + INCREASE)
            log.info("no ACI refusal since the last shrink: capacity budget back to %.0f%%", self.factor * 100)
        u = self._view.usage
        log.debug(
            "capacity in use: %d groups, %s cores, %d/%d creates in the short/long window",
            u.groups,
            u.cores,
            u.creates_short,
            u.creates_long,
        )


def _whole(budget_: Budget) -> Held:
    """The (scaled) budget's cores and container groups."""
    return Held(Decimal(budget_.scaled(budget_.cores)), budget_.scaled(budget_.groups))


def _free(budget_: Budget, usage: Usage) -> Held:
    """What the (scaled) budget leaves free of cores and container groups."""
    return Held(
        max(Decimal(0), Decimal(budget_.scaled(budget_.cores)) - usage.cores),
        max(0, budget_.scaled(budget_.groups) - usage.groups),
    )


def listed(source: CapacitySource, selector: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = source.list_jobs(label_selector=selector, limit=PAGE, continue_token=token)
        jobs.extend(page.items)
        token = page.continue_token
        if not token:
            return jobs


def _created(meta: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(meta.get("creationTimestamp")))
    except ValueError:
        return None


_lock = threading.Lock()
_admissions: dict[tuple[str, str, Settings], Admission] = {}


def admission_for(settings: Settings, cluster_key: str) -> Admission:
    """The process-wide :class:`Admission` for this cluster (``host|namespace``) and settings."""
    with _lock:
        key = (cluster_key, settings.namespace, settings)
        found = _admissions.get(key)
        if found is None:
            found = _admissions[key] = Admission(settings)
        return found


def whole_budget(settings: Settings, *, factor: float = 1.0) -> Budget:
    """The capacity budget the settings give (``factor``: the AIMD share of it in use)."""
    return Budget(
        groups=settings.capacity_container_groups,
        cores=settings.capacity_cores,
        creates_short=settings.capacity_creates_per_5min,
        creates_long=settings.capacity_creates_per_hour,
        windows=settings.capacity_window_seconds,
        factor=factor,
    )
