"""The app's settings: one typed object built from environment variables in one place.

Every field's alias is the app-setting name (what goes in local.settings.json ``Values`` or
in the Function App's configuration). ``Settings.from_env`` reports every missing or
malformed setting at once, each by its name, so a deployment is fixed in one pass.
The README's settings table and local.settings.sample.json are checked against this class
by tests.

The fields live in one group per capability (``storage``, ``cluster``, ``workload``, ``timers``,
``cost``, ``capacity``, ``telemetry`` beside this module), each with its own validators; ``Settings`` inherits
them all (pydantic merges fields and validators from base classes) and keeps what spans groups:
the range checks shared by many fields, the cross-field checks, and the one-pass error report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Annotated

from pydantic import ValidationError, ValidationInfo, field_validator, model_validator

from shared.base.quantity import aci_cpu, aci_memory
from shared.config.capacity import CapacitySettings
from shared.config.cluster import (
    DNS_LABEL,
    MIN_JOB_NAME,
    SYSTEM_NAMESPACE_PREFIXES,
    SYSTEM_NAMESPACES,
    ClusterSettings,
)
from shared.config.cost import CostSettings, Prices
from shared.config.storage import STORAGE_CONNECTION, StorageSettings
from shared.config.telemetry import TelemetrySettings
from shared.config.timers import TimerSettings
from shared.config.workload import ACI_MAX_CPU, ACI_MAX_MEMORY, WorkloadSettings

__all__ = [
    "MIN_JOB_NAME",
    "STORAGE_CONNECTION",
    "Prices",
    "Settings",
    "SettingsError",
    "markdown_table",
    "settings_from",
]

_SETTING_NAME = re.compile(r"\b(?:VNB_[A-Z_]+|AzureWebJobsStorage(?:__[A-Za-z]+)?)\b")
_STAND_INS: dict[str, object] = {
    # valid values for the required settings, used only to run the cross-field checks on the others
    "VNB_REQUESTS_QUEUE": "stand-in-requests",
    "VNB_EVENTS_QUEUE": "stand-in-events",
    "VNB_FOLLOWUP_QUEUE": "stand-in-followup",
    "VNB_RECONCILE_SCHEDULE": "0 * * * * *",
    "VNB_SCHEDULES_TIMER": "0 * * * * *",
}


class SettingsError(ValueError):
    """One or more settings are missing or malformed; the message lists each by name."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {name}: {why}" for name, why in problems)
        super().__init__(
            f"vnode-batch cannot start: {len(problems)} app setting(s) need fixing "
            f"(local.settings.json Values locally, the Function App configuration in Azure):\n{lines}"
        )


# The bases' order sets the fields' order (pydantic collects them from the last base first):
# storage, cluster, workload, timers, cost, capacity, telemetry, as the README's table lists them.
class Settings(
    TelemetrySettings,
    CapacitySettings,
    CostSettings,
    TimerSettings,
    WorkloadSettings,
    ClusterSettings,
    StorageSettings,
):
    """All app settings. ``description`` is the documentation shown in the README table."""

    # --- checks shared by fields of several groups -------------------------------------------
    @field_validator(
        "kube_timeout_seconds",
        "ready_cache_seconds",
        "capacity_cache_seconds",
    )
    @classmethod
    def _positive_float(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator(
        "max_completions",
        "max_parallelism",
        "default_timeout_seconds",
        "max_timeout_seconds",
        "job_ttl_seconds",
        "pending_timeout_seconds",
        "log_tail_lines",
        "log_tail_bytes",
        "reconcile_page_size",
        "node_count",
        "bootstrap_defer_seconds",
        "bootstrap_max_wait_seconds",
        "capacity_container_groups",
        "capacity_cores",
        "capacity_creates_per_5min",
        "capacity_creates_per_hour",
        "capacity_max_wait_seconds",
        "capacity_max_attempts",
        "capacity_defer_seconds",
    )
    @classmethod
    def _positive_int(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be a whole number of at least 1")
        return value

    @field_validator("keep_finished_seconds", "permission_grace_seconds", "followup_seconds")
    @classmethod
    def _non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 or more")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Settings:
        # In from_env's second pass the settings that failed on their own hold stand-in values:
        # leave out the checks that name one of them (they are reported already).
        unchecked: frozenset[str] = (info.context or {}).get("unchecked", frozenset())
        problems = [p for p in self._cross_field_problems() if not set(_SETTING_NAME.findall(p)) & unchecked]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _cross_field_problems(self) -> list[str]:
        """Checks across settings and against ACI's ceilings; each text starts with the setting's name."""
        problems: list[str] = []
        if not (self.storage_connection or self.storage_queue_uri):
            problems.append(
                "AzureWebJobsStorage: set it (locally `UseDevelopmentStorage=true`) or use an "
                "identity connection with AzureWebJobsStorage__queueServiceUri"
            )
        if not self.storage_connection and self.storage_queue_uri and not self.storage_table_uri:
            problems.append(
                "AzureWebJobsStorage__tableServiceUri: required with AzureWebJobsStorage__queueServiceUri "
                "(the request ledger lives in Table storage), e.g. https://<account>.table.core.windows.net"
            )
        if self.followup_queue in (self.requests_queue, self.events_queue, self.poison_queue):
            problems.append(
                "VNB_FOLLOWUP_QUEUE: must differ from VNB_REQUESTS_QUEUE, its poison queue and VNB_EVENTS_QUEUE "
                "(each queue has its own trigger or consumer)"
            )
        if self.cluster_mode == "kubeconfig" and not self.kubeconfig:
            problems.append("VNB_KUBECONFIG: required when VNB_CLUSTER_MODE=kubeconfig")
        if self.cluster_mode == "aks":
            for alias, value in (
                ("VNB_SUBSCRIPTION_ID", self.subscription_id),
                ("VNB_RESOURCE_GROUP", self.resource_group),
                ("VNB_APP_PRINCIPAL_ID", self.app_principal_id),
            ):
                if not value:
                    problems.append(f"{alias}: required when VNB_CLUSTER_MODE=aks")
        if self.default_cpu > self.max_cpu:
            problems.append("VNB_DEFAULT_CPU: larger than VNB_MAX_CPU")
        if self.max_cpu > ACI_MAX_CPU:
            problems.append("VNB_MAX_CPU: ACI allows at most 4 vCPU per container group (in most regions)")
        elif self.default_cpu <= self.max_cpu < aci_cpu(self.default_cpu):
            problems.append("VNB_DEFAULT_CPU: rounded up to 10m for ACI it is larger than VNB_MAX_CPU")
        if self.max_memory > ACI_MAX_MEMORY:
            problems.append(
                f"VNB_MAX_MEMORY: ACI allows at most 16 GB (decimal) per container group, "
                f"{Decimal(self.max_memory) / 10**9:.4g} GB is more (use `16G`, not `16Gi` = 17.18 GB)"
            )
        elif aci_memory(self.default_memory) > self.max_memory:
            problems.append("VNB_DEFAULT_MEMORY: rounded up to 100 MB for ACI it is larger than VNB_MAX_MEMORY")
        problems.extend(self._namespace_problems())
        if self.idle_stop_minutes is not None and self.cluster_mode != "aks":
            problems.append(
                "VNB_IDLE_STOP_MINUTES: only for VNB_CLUSTER_MODE=aks (the app cannot stop your own cluster)"
            )
        if self.capacity_creates_per_5min > self.capacity_creates_per_hour:
            problems.append("VNB_CAPACITY_CREATES_PER_5MIN: larger than VNB_CAPACITY_CREATES_PER_HOUR")
        if self.default_timeout_seconds > self.max_timeout_seconds:
            problems.append("VNB_DEFAULT_TIMEOUT_SECONDS: larger than VNB_MAX_TIMEOUT_SECONDS")
        return problems

    def _namespace_problems(self) -> list[str]:
        ns = self.namespace
        if not DNS_LABEL.fullmatch(ns):
            return [
                "VNB_NAMESPACE: a namespace is 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit"
            ]
        if ns in SYSTEM_NAMESPACES or ns.startswith(SYSTEM_NAMESPACE_PREFIXES):
            return [
                f"VNB_NAMESPACE: {ns!r} is a namespace of Kubernetes, AKS or a cluster add-on, and the app adopts its "
                "namespace and holds write rights there: give it a namespace of its own (e.g. vnode-batch)"
            ]
        if "--" in ns:
            # ACI container-group names may not contain two hyphens in a row, and every pod's
            # group is named "<namespace>-<pod name>" (azure-aci pkg/provider/aci.go containerGroupName).
            return [
                "VNB_NAMESPACE: contains '--', and ACI refuses container-group names (`<namespace>-<pod>`) with consecutive hyphens"
            ]
        room = self.job_name_budget
        if room < MIN_JOB_NAME:
            longest = len(ns) - (MIN_JOB_NAME - room)
            return [
                f"VNB_NAMESPACE: {len(ns)} characters leave {max(room, 0)} for Job names with VNB_MAX_COMPLETIONS="
                f"{self.max_completions} but at least {MIN_JOB_NAME} are needed, so the namespace may have at most "
                f"{longest} characters (ACI container groups are named `<namespace>-<pod name>`, ≤ 63)"
            ]
        return []

    @property
    def job_name_budget(self) -> int:
        """Longest Job name whose pods' ACI container groups stay within 63 characters.

        ``63 - len(namespace) - 1 - 6``: the group is ``<namespace>-<pod>`` (azure-aci
        ``containerGroupName``) and a pod is ``<generateName>`` + 5 random characters, with
        generateName ``<job>-`` (Kubernetes Job controller; apiserver ``SimpleNameGenerator``).
        For an Indexed Job generateName is ``<job>-<index>-`` (``podGenerateNameWithIndex``), so
        the widest index, ``VNB_MAX_COMPLETIONS - 1``, and its hyphen come off too; that also keeps
        the pods' hostname ``<job>-<index>`` within 63.
        """
        room = 63 - len(self.namespace) - 1 - 6
        if self.max_completions > 1:
            room -= len(str(self.max_completions - 1)) + 1
        return room

    # --- construction --------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build the settings from app settings; raise SettingsError naming every bad one."""
        aliases = {f.alias for f in cls.model_fields.values() if f.alias}
        values = {k: v for k, v in environ.items() if k in aliases and v != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            problems = _problems(e)
        # Pydantic runs the model ("after") checks only once every field parsed, so a first pass with
        # a bad field says nothing about the cross-field and ACI-ceiling checks. Run them again on the
        # fields that parsed, the failed ones replaced by valid stand-ins, and report both at once.
        failed = frozenset(name for name, _ in problems)
        stand_ins = {
            f.alias: _STAND_INS.get(f.alias, f.default) for f in cls.model_fields.values() if f.alias in failed
        }
        try:
            cls.model_validate({**values, **stand_ins}, context={"unchecked": failed})
        except ValidationError as e:
            problems += [p for p in _problems(e) if p not in problems and p[0] not in failed]
        raise SettingsError(problems)


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for item in error.errors():
        loc = item.get("loc", ())
        if loc:
            name = str(loc[0])
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "finite_number":
                message = f"must be a finite number, not {item['input']!r}"
            if item["type"] == "missing":
                field = next((f for f in Settings.model_fields.values() if f.alias == name), None)
                message = "required and not set" + (f" ({field.description})" if field and field.description else "")
            problems.append((name, message))
        else:  # model-level checks already name their settings
            for part in item["msg"].removeprefix("Value error, ").split("; "):
                name, _, why = part.partition(": ")
                problems.append((name, why))
    return problems


@lru_cache(maxsize=1)
def _cached(items: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.from_env(dict(items))


def settings_from(environ: Mapping[str, str]) -> Settings:
    """Settings for this environment, parsed once per distinct environment (hot-path safe)."""
    aliases = _ALIASES
    return _cached(tuple(sorted((k, v) for k, v in environ.items() if k in aliases)))


_ALIASES: frozenset[str] = frozenset(f.alias for f in Settings.model_fields.values() if f.alias)

SettingName = Annotated[str, "app setting name"]


def markdown_table() -> str:
    """The README's settings table, generated from the fields (``python -m shared.config.settings``)."""
    rows = ["| Setting | Default | What it does |", "|---|---|---|"]
    for name, f in Settings.model_fields.items():
        default: object = f.default
        if f.is_required():
            shown = "**required**"
        elif default is None:
            shown = "—"
        elif isinstance(default, tuple):
            shown = "`" + ",".join(str(x) for x in default) + "`"
        elif name in ("default_memory", "max_memory"):
            shown = "`1.5G`" if name == "default_memory" else "`16G`"
        else:
            shown = f"`{default}`"
        doc = (f.description or "").replace("|", "\\|")
        rows.append(f"| `{f.alias}` | {shown} | {doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
