"""Which slots of a schedule are due when the timer fires: cron in an IANA zone, DST gaps and
folds, the timer's own windows (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from croniter import croniter

from shared.schedules.definitions import (
    CLOCK_SKEW,
    MAX_SLOTS_PER_RUN,
    TIMESPAN,
    DueSlot,
    Schedule,
    ScheduleRow,
    cron_walls,
    slot_stamp,
)


def request_id(schedule: Schedule, slot: datetime) -> str:
    return f"{schedule.name}-{slot_stamp(slot)}"


def runs_at_fixed_times(cron: str) -> bool:
    """True for a schedule that runs at specific times of day: one minute value and not every
    hour (``30 2 * * *``, ``0 8,20 * * 1-5``). Every other schedule (several minutes per hour,
    or every hour: ``*/10 1-3 * * *``, ``15 * * * *``) runs "more frequently" in cron's terms.

    The distinction is Vixie cron's, kept by cronie (cron(8) "Local time changes of less than
    three hours ... only applies to jobs that run at a specific time and jobs that are run
    with a granularity greater than one hour. Jobs that run more frequently are scheduled
    normally"). cronie ``src/cron.c`` main loop: when the clock jumps forward ("DST begins")
    it runs the wildcard jobs for the current minute, then the fixed-time jobs of every minute
    skipped; when it goes back ("DST ends") it runs only the wildcard jobs ("The fixed-time
    jobs probably have already run, and should not be repeated"); find_jobs tells them apart
    by the entry flags MIN_STAR | HR_STAR, i.e. by the text (a minute or hour field starting
    with ``*``). Here it is decided on the expanded fields so that equal schedules behave the
    same (``*/10`` and ``0,10,20,30,40,50`` alike).
    """
    minutes, hours = croniter(cron).expanded[:2]
    several_minutes = minutes == ["*"] or len(set(minutes)) > 1
    every_hour = hours == ["*"] or len(set(hours)) == 24
    return not (several_minutes or every_hour)


def wall_to_instants(wall: datetime, zone: ZoneInfo, *, fixed_times: bool) -> list[datetime]:
    """The UTC instants a matching wall-clock time (naive, in ``zone``) runs at.

    * an ordinary time: one instant;
    * a time that happens twice (fall back): both instants, or only the first for a
      fixed-time schedule (see :func:`runs_at_fixed_times`);
    * a time that does not exist (spring forward): nothing, or for a fixed-time schedule the
      first instant after the gap (cron(8): "those jobs that would have run in the interval
      that has been skipped will be run immediately").
    """
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first.astimezone(UTC)]
    a, b = first.astimezone(UTC), second.astimezone(UTC)
    if a.astimezone(zone).replace(tzinfo=None) != wall:
        # Does not exist: fold=0 uses the offset before the gap and lands after it, fold=1
        # the offset after and lands before it (PEP 495). The gap ends at the later one's
        # transition: the wall time where the earlier instant is, read after the change.
        if not fixed_times:
            return []
        return [_gap_end(min(a, b), max(a, b), zone)]
    return [min(a, b)] if fixed_times else sorted((a, b))


def _gap_end(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    """The first instant after a spring-forward transition in ``[low, high]`` (UTC, minute
    resolution: transitions are on whole minutes in tzdata)."""
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(minutes=1):
        mid = low + (high - low) / 2
        mid = mid.replace(second=0, microsecond=0)
        if mid <= low:
            break
        if mid.astimezone(zone).utcoffset() == before:
            low = mid
        else:
            high = mid
    return high


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def slots_between(
    schedule: Schedule, after: datetime, until: datetime, *, limit: int = MAX_SLOTS_PER_RUN
) -> list[datetime]:
    """The schedule's slots in ``(after, until]``, as UTC datetimes, oldest first, each once
    (DST policy in the module docstring)."""
    zone, fixed = schedule.zone, runs_at_fixed_times(schedule.cron)
    after, until = after.astimezone(UTC), until.astimezone(UTC)
    stop_wall = _wall(until, zone) + _DST_MARGIN
    found: set[datetime] = set()
    enough_at: datetime | None = None
    for wall in cron_walls(schedule.cron, _wall(after, zone) - _DST_MARGIN):
        if wall > stop_wall or (enough_at is not None and wall > enough_at):
            break
        found.update(i for i in wall_to_instants(wall, zone, fixed_times=fixed) if after < i <= until)
        if enough_at is None and len(found) >= limit:
            enough_at = wall + 2 * _DST_MARGIN  # the slots still to come can only be later
    return sorted(found)[:limit]


def latest_slot(schedule: Schedule, at_or_before: datetime) -> datetime | None:
    """The last slot at or before a moment (the same DST policy as :func:`slots_between`)."""
    zone, fixed = schedule.zone, runs_at_fixed_times(schedule.cron)
    at_or_before = at_or_before.astimezone(UTC)
    floor = _wall(at_or_before, zone) - _DST_MARGIN
    best: datetime | None = None
    for wall in cron_walls(schedule.cron, _wall(at_or_before, zone) + _DST_MARGIN, backwards=True):
        if best is not None and wall < floor:
            break
        candidates = [i for i in wall_to_instants(wall, zone, fixed_times=fixed) if i <= at_or_before]
        if candidates and (best is None or max(candidates) > best):
            best = max(candidates)
    return best


def next_slot(schedule: Schedule, after: datetime) -> datetime | None:
    found = slots_between(schedule, after, after + timedelta(days=366 * 50), limit=1)
    return found[0] if found else None


@dataclass(frozen=True)
class TimerWindow:
    """The occurrence being fired (``T``) and the timer's period before it (``P``)."""

    occurrence: datetime
    period: timedelta


def timer_window(timer_schedule: str, now: datetime) -> TimerWindow:
    """The timer occurrence ``now`` belongs to, from its NCRONTAB (or TimeSpan) schedule.

    NCRONTAB: the latest tick at or before ``now`` (allowing :data:`CLOCK_SKEW` for an early
    fire), and the gap to the tick before it. TimeSpan (``HH:MM:SS``, App Service plans):
    ticks are not aligned to the clock, so ``T`` is ``now`` and ``P`` the span.
    """
    now = now.astimezone(UTC)
    span = TIMESPAN.fullmatch(timer_schedule.strip())
    if span:
        hours, minutes, seconds = (int(g) for g in span.groups())
        return TimerWindow(occurrence=now, period=timedelta(hours=hours, minutes=minutes, seconds=seconds))
    probe = (now + CLOCK_SKEW).replace(microsecond=0) + timedelta(seconds=1)
    it = croniter(timer_schedule, probe, second_at_beginning=True)
    occurrence = it.get_prev(datetime).astimezone(UTC)
    previous = it.get_prev(datetime).astimezone(UTC)
    return TimerWindow(occurrence=occurrence, period=occurrence - previous)


def due_slots(
    schedules: Sequence[Schedule],
    *,
    now: datetime,
    timer_schedule: str,
    last_run: datetime | None,
    past_due: bool,
) -> list[DueSlot]:
    """The slots to enqueue for this timer run.

    * regular: every slot in ``(T - P, T]``;
    * catch-up, only when the host flags the run as past due and ``last_run`` (the host's
      ScheduleStatus.Last) is older than ``T - P``: the latest slot in ``(last_run, T - P]``
      as well — one, however long the outage. It is never older than one schedule interval
      before ``T - P``, so the look-back is at most one timer period plus one schedule interval;
    * nothing when ``last_run >= T``: this occurrence already ran (a second fire of it).

    What the host passes (azure-webjobs-sdk-extensions ``Extensions/Timers/Listener/
    TimerListener.cs``): past due is decided only in ``StartAsync``, when the listener starts
    after the stored ``Next`` went by (the app was stopped or down), never for a late regular
    run; the status handed to a run is the one from before it, and ``InvokeJobFunction`` then
    stores ``Last`` = that run's own start. So the run after a past-due run sees ``Last`` = the
    past-due run's start, not the stale one, and is not past due: only the past-due run catches
    up. ``last_run`` is not a lower bound for the regular window: the past-due run enqueued its
    own window only, and the slots between its occurrence and its start belong to the next run.

    Without ``last_run`` the look-back is the timer period only: a first run (the host passes
    ``Last`` = 0001-01-01), or no monitor (``TimerSchedule.Create`` turns ``useMonitor`` off for
    schedules firing more often than once a minute; then no status and never past due).
    """
    window = timer_window(timer_schedule, now)
    occurrence, start = window.occurrence, window.occurrence - window.period
    if last_run is not None and last_run >= occurrence:
        return []
    lower = start
    missed = past_due and last_run is not None and last_run < start - CLOCK_SKEW
    out: list[DueSlot] = []
    for schedule in schedules:
        if not schedule.enabled:
            continue
        for slot in slots_between(schedule, lower, occurrence):
            out.append(DueSlot(schedule, slot, request_id(schedule, slot), catch_up=False))
        if missed:
            assert last_run is not None
            missed_slot = latest_slot(schedule, start)
            if missed_slot is not None and missed_slot > last_run:
                out.append(DueSlot(schedule, missed_slot, request_id(schedule, missed_slot), catch_up=True))
    out.sort(key=lambda d: (d.slot, d.schedule.name))
    return out


def describe(schedules: Sequence[Schedule], now: datetime) -> list[ScheduleRow]:
    """What ``python -m shared.cli schedules`` shows: each batch and its next run."""
    rows = []
    for s in schedules:
        upcoming = next_slot(s, now.astimezone(UTC)) if s.enabled else None
        rows.append(
            ScheduleRow(
                name=s.name,
                enabled=s.enabled,
                cron=s.cron,
                time_zone=s.time_zone,
                next_run=upcoming.astimezone(s.zone) if upcoming else None,
                next_run_utc=upcoming,
                next_request_id=request_id(s, upcoming) if upcoming else None,
                image=str(s.request.get("image", "")),
                description=s.description,
            )
        )
    return rows


_DST_MARGIN: Final = timedelta(hours=4)
"""More than any UTC offset change (DST shifts are 30 min to 2 h): wall-clock times this far
outside a window cannot map into it."""
