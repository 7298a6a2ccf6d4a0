"""Settings of the app's timers and files: the reconcile pass and its follow-ups, the schedules
timer and file, and the teams file with how callers are identified."""

from __future__ import annotations

import re

from pydantic import field_validator

from shared.config.fields import SettingsGroup, setting

_NCRONTAB_FIELDS = 6


class TimerSettings(SettingsGroup):
    """Reconcile, schedules and teams."""

    reconcile_schedule: str = setting(
        "VNB_RECONCILE_SCHEDULE",
        ...,
        "NCRONTAB (six fields, seconds first, UTC) of the reconcile timer that reports finished Jobs.",
    )
    pending_timeout_seconds: int = setting(
        "VNB_PENDING_TIMEOUT_SECONDS",
        900,
        "A Job whose pod stays Pending on the virtual node longer than this (ACI capacity, quota, "
        "image pull) is failed with a `job.failed` event and deleted.",
    )
    keep_finished_seconds: int = setting(
        "VNB_KEEP_FINISHED_SECONDS",
        0,
        "How long a reported Job object is kept (its pods are deleted at once, freeing ACI container "
        "groups), e.g. to inspect it with kubectl. 0 deletes it at once: the request ledger remembers "
        "finished keys, so a late redelivery of the message creates nothing either way.",
    )
    log_tail_lines: int = setting("VNB_LOG_TAIL_LINES", 50, "Lines of pod log carried in completion events.")
    log_tail_bytes: int = setting(
        "VNB_LOG_TAIL_BYTES", 4096, "Bytes of pod log carried in completion events (per pod)."
    )
    followup_seconds: int = setting(
        "VNB_FOLLOWUP_SECONDS",
        2,
        "Visibility delay of the next follow-up reconcile pass while Jobs are in flight (0: none, the "
        "reconcile timer alone reports outcomes). With host.json's 2 s maxPollingInterval, passes run "
        "about every 3 s.",
    )
    reconcile_page_size: int = setting(
        "VNB_RECONCILE_PAGE_SIZE", 200, "Jobs per list page when the reconciler scans (limit/continue)."
    )

    schedules_file: str = setting(
        "VNB_SCHEDULES_FILE",
        "schedules.json",
        "Periodic batch definitions (relative to the app root).",
    )
    teams_file: str = setting(
        "VNB_TEAMS_FILE",
        "",
        'Teams sharing this app (relative to the app root; docs/operations.md, "Sharing between teams"): '
        "members, capacity shares, priorities and allowlists. Empty: no tenancy, every caller sees every "
        "request and capacity goes first come, first served.",
    )
    easy_auth: bool = setting(
        "VNB_EASY_AUTH",
        False,
        "App Service authentication runs in front of the API (infra sets it): the caller's Entra identity "
        "(X-MS-CLIENT-PRINCIPAL) decides its teams. Off: only function keys do (the headers could be forged).",
    )
    schedules_timer: str = setting(
        "VNB_SCHEDULES_TIMER",
        ...,
        "NCRONTAB of the timer that enqueues due periodic batches; at most once a minute (one seconds value), "
        "else the host turns off the schedule monitor that catch-up needs.",
    )

    @field_validator("reconcile_schedule", "schedules_timer")
    @classmethod
    def _ncrontab(cls, value: str) -> str:
        from croniter import croniter

        fields = value.split()
        if len(fields) == _NCRONTAB_FIELDS:
            if croniter.is_valid(value, second_at_beginning=True):
                return value
        elif re.fullmatch(r"\d{1,2}:\d{2}:\d{2}", value):
            return value  # the host also takes a TimeSpan (App Service plans)
        raise ValueError("expected an NCRONTAB expression with six fields, seconds first, e.g. `*/15 * * * * *`")

    @field_validator("schedules_timer")
    @classmethod
    def _once_a_minute_at_most(cls, value: str) -> str:
        """Catch-up after downtime needs the host's schedule monitor (ScheduleStatus.Last,
        IsPastDue), which the host silently turns off for a schedule with more than one
        occurrence in the next minute, or a TimeSpan under a minute
        (azure-webjobs-sdk-extensions ``src/WebJobs.Extensions/Extensions/Timers/Scheduling/
        TimerSchedule.cs`` Create: ``attribute.UseMonitor = false``). The host tests the
        minute after start only; one seconds value is what keeps every minute to one fire.
        """
        from croniter import croniter

        span = re.fullmatch(r"(\d{1,2}):(\d{2}):(\d{2})", value)
        if span:
            hours, minutes, seconds = (int(g) for g in span.groups())
            if hours * 3600 + minutes * 60 + seconds < 60:
                raise ValueError(
                    "fires more than once a minute: the host then turns its schedule monitor off and "
                    "missed periodic batches are never caught up; use a period of at least 00:01:00"
                )
            return value
        seconds_field = croniter(value, second_at_beginning=True).expanded[-1]
        if seconds_field == ["*"] or len(set(seconds_field)) > 1:
            raise ValueError(
                "fires more than once a minute (its seconds field has several values): the host then turns "
                "its schedule monitor off and missed periodic batches are never caught up; "
                "use one seconds value, e.g. `0 * * * * *`"
            )
        return value
