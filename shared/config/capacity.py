"""Settings of capacity: the ACI quotas the app admits Jobs against (docs/operations.md "Capacity")."""

from __future__ import annotations

from pydantic import field_validator

from shared.config.fields import SettingsGroup, setting


class CapacitySettings(SettingsGroup):
    """ACI quotas, and how long and how often a request waits for them."""

    # Defaults are ACI's default quotas per subscription and region (Microsoft docs, "Resource
    # availability & quota limits for ACI", learn.microsoft.com/azure/container-instances/
    # container-instances-resource-and-quota-limits). See docs/operations.md "Capacity".
    capacity_container_groups: int = setting(
        "VNB_CAPACITY_CONTAINER_GROUPS",
        100,
        "Container groups (one per running or pending pod) the app may hold at once: your ACI quota in this "
        "region, minus what else in the subscription uses it. A request that does not fit waits on the queue.",
    )
    capacity_cores: int = setting(
        "VNB_CAPACITY_CORES",
        100,
        "vCPU the app's pods may hold at once (after ACI's rounding): your ACI standard-cores quota in this "
        "region, minus what else in the subscription uses it.",
    )
    capacity_creates_per_5min: int = setting(
        "VNB_CAPACITY_CREATES_PER_5MIN",
        100,
        "Container-group creates the app may make in any 5 minutes: your ACI quota in this region, minus what "
        "else in the subscription creates.",
    )
    capacity_creates_per_hour: int = setting(
        "VNB_CAPACITY_CREATES_PER_HOUR",
        300,
        "Container-group creates the app may make in any hour: your ACI quota in this region, minus what else "
        "in the subscription creates.",
    )
    capacity_window_seconds: tuple[int, int] = setting(
        "VNB_CAPACITY_WINDOW_SECONDS",
        (300, 3600),
        "Lengths of ACI's two create-rate windows in seconds, short,long (ACI: 5 minutes and an hour). "
        "Change only if ACI changes them (or to compress time in a benchmark).",
    )
    capacity_max_wait_seconds: int = setting(
        "VNB_CAPACITY_MAX_WAIT_SECONDS",
        86400,
        "A request waiting longer than this for capacity ends in a `request.deadlettered` event, reason "
        "`CapacityTimeout`.",
    )
    capacity_max_attempts: int = setting(
        "VNB_CAPACITY_MAX_ATTEMPTS",
        5,
        "Times a request whose pod ACI refused for quota, capacity or throttling goes back to the queue; the "
        "next refusal ends it in `job.failed`, reason `CapacityExhausted`.",
    )
    capacity_defer_seconds: int = setting(
        "VNB_CAPACITY_DEFER_SECONDS",
        20,
        "Longest visibility delay of a request waiting for capacity; the oldest waiting requests come back "
        "sooner (down to a quarter of it), so they get freed capacity first.",
    )
    capacity_sleep_seconds: int = setting(
        "VNB_CAPACITY_SLEEP_SECONDS",
        120,
        "Longest visibility delay of a request waiting for container groups or cores whose message the "
        "reconciler can wake (its handle is in the request ledger): the reconciler makes it visible as soon as "
        "capacity it may take frees, so this only bounds how long a missed wake-up costs.",
    )
    capacity_cache_seconds: float = setting(
        "VNB_CAPACITY_CACHE_SECONDS",
        5.0,
        "How long a process trusts its view of the capacity in use (two Kubernetes list calls) before listing "
        "again; its own creates are added meanwhile.",
    )

    @field_validator("capacity_window_seconds", mode="before")
    @classmethod
    def _windows(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
            if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
                raise ValueError("expected two whole numbers of seconds, short,long, e.g. `300,3600`")
            short, long = int(parts[0]), int(parts[1])
            if short > long:
                raise ValueError("the short window must not be longer than the long one")
            return (short, long)
        return value
