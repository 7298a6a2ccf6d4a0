"""The app's settings: one typed object built from environment variables in one place.

Every field's alias is the app-setting name (what goes in local.settings.json ``Values`` or
in the Function App's configuration). ``Settings.from_env`` reports every missing or
malformed setting at once, each by its name, so a deployment is fixed in one pass.
The README's settings table and local.settings.sample.json are checked against this class
by tests.

Longer than our ~500-line rule, knowingly: one pydantic model whose cross-field check and
one-pass error report (every bad setting named at once) need every field in one class. The way to
split it is per-capability base models (pydantic merges fields and validators from base classes:
capacity, cluster, workload access, teams) that ``Settings`` inherits; not done yet because the
settings table test, the sample file and six issues' fields moved through this file in one session.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Final, Literal

from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.base.quantity import aci_cpu, aci_memory, parse_cpu, parse_memory
from shared.config.telemetry import TelemetrySettings

ACI_MAX_CPU = Decimal(4)
"""vCPU per container group ACI offers in most regions (ACI "resource availability" doc;
../shared/reference/virtual-node.md): more fails, usually on capacity."""
ACI_MAX_MEMORY = 16 * 10**9
"""Bytes per container group ACI offers in most regions: 16 GB *decimal*. 16Gi is 17.18 GB
and 15Gi 16.1 GB as the virtual node converts them (azure-aci ``getContainers``): both fail."""
SYSTEM_NAMESPACES: Final = frozenset(
    {
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "gatekeeper-system",  # Azure Policy add-on
        "calico-system",  # Calico network policy
        "tigera-operator",
        "tigera-system",
        "aks-command",  # az aks command invoke
        "app-routing-system",  # application routing add-on
        "aks-istio-system",  # Istio service mesh add-on
        "azure-arc",
        "flux-system",  # GitOps extension
        "dapr-system",
        "keda",
    }
)
"""Namespaces of Kubernetes itself, AKS and its add-ons: never the app's (it adopts its namespace
through an AKS managed namespace, ``adoptionPolicy: Always``, and writes Jobs there)."""
SYSTEM_NAMESPACE_PREFIXES: Final = ("kube-", "aks-", "openshift-")

_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MIN_JOB_NAME = 14
"""The shortest Job name the app makes: ``vnb-`` + a 10-character hash of the key (shared.job.render)."""

STORAGE_CONNECTION = "AzureWebJobsStorage"
"""The connection name every queue binding uses (a setting *prefix* with identity connections)."""

DEFAULT_PRICE_VCPU_SECOND = Decimal("0.00001125")
"""ACI Linux, East US, pay-as-you-go: 0.0405 per vCPU-hour / 3600 (README "Cost" gives the source)."""
DEFAULT_PRICE_GB_SECOND = Decimal("0.0000012361")
"""ACI Linux, East US, pay-as-you-go: 0.00445 per GB-hour / 3600, rounded to 10 decimals."""
_CURRENCY = re.compile(r"[A-Z]{3}")
_QUEUE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_MAX_QUEUE_NAME = 63
_POISON_SUFFIX = "-poison"
_NCRONTAB_FIELDS = 6
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


def _field(alias: str, default: Any = ..., doc: str = "") -> Any:
    return Field(default, alias=alias, description=doc)


class Settings(TelemetrySettings):
    """All app settings. ``description`` is the documentation shown in the README table."""

    # allow_inf_nan=False: "nan", "inf" (and "1e999", which float() reads as inf) are refused for
    # every float setting, named, instead of failing later as a bare ValueError (e.g. a socket timeout)
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore", allow_inf_nan=False)

    # --- storage and queues -------------------------------------------------------------
    storage_connection: str | None = _field(
        "AzureWebJobsStorage",
        None,
        "Storage connection for the queues. Locally `UseDevelopmentStorage=true` or an Azurite "
        "connection string; in Azure leave it unset and use the identity form "
        "`AzureWebJobsStorage__queueServiceUri` (+ `__credential`, `__clientId`).",
    )
    storage_queue_uri: str | None = _field(
        "AzureWebJobsStorage__queueServiceUri",
        None,
        "Queue service URI for an identity-based connection (no keys), e.g. "
        "`https://<account>.queue.core.windows.net`.",
    )
    storage_table_uri: str | None = _field(
        "AzureWebJobsStorage__tableServiceUri",
        None,
        "Table service URI of the request ledger for an identity-based connection, e.g. "
        "`https://<account>.table.core.windows.net` (required with `__queueServiceUri`).",
    )
    storage_client_id: str | None = _field(
        "AzureWebJobsStorage__clientId",
        None,
        "Client id of the user-assigned managed identity used for the queues.",
    )
    requests_queue: str = _field(
        "VNB_REQUESTS_QUEUE",
        ...,
        "Queue the dispatch function reads requests from (bound as `%VNB_REQUESTS_QUEUE%`); "
        "poisoned messages go to `<name>-poison`, so at most 56 characters and not ending in `-poison`.",
    )
    events_queue: str = _field(
        "VNB_EVENTS_QUEUE",
        ...,
        "Queue that receives one CloudEvent per request outcome (bound as `%VNB_EVENTS_QUEUE%`).",
    )
    followup_queue: str = _field(
        "VNB_FOLLOWUP_QUEUE",
        ...,
        "Queue of the follow-up reconcile passes (bound as `%VNB_FOLLOWUP_QUEUE%`): while Jobs are in "
        "flight, each pass queues the next one, so outcomes are reported within seconds; nothing is queued when idle.",
    )
    event_source: str = _field("VNB_EVENT_SOURCE", "/vnode-batch", "CloudEvents `source` attribute of every event.")

    # --- cluster access ------------------------------------------------------------------
    cluster_mode: Literal["aks", "kubeconfig"] = _field(
        "VNB_CLUSTER_MODE",
        "aks",
        "`aks`: the app finds or bootstraps the AKS cluster through ARM with its managed "
        "identity. `kubeconfig`: bring your own cluster, reached with `VNB_KUBECONFIG`; ARM is never called.",
    )
    kubeconfig: str | None = _field("VNB_KUBECONFIG", None, "Path of the kubeconfig file (kubeconfig mode only).")
    kube_context: str | None = _field(
        "VNB_KUBE_CONTEXT", None, "Context to use from the kubeconfig (default: its current-context)."
    )
    namespace: str = _field(
        "VNB_NAMESPACE",
        "vnode-batch",
        "Namespace the Jobs are created in, the app's own: a namespace of Kubernetes, AKS or an add-on "
        "(`default`, `kube-*`, `aks-*`, `gatekeeper-system`, `calico-system`, `tigera-operator`, ...) is "
        "refused. On the virtual node every pod becomes the ACI container "
        "group `<namespace>-<pod name>` (≤ 63 characters, no `--`), so a long namespace leaves less "
        "room for Job names; startup fails if none is left for VNB_MAX_COMPLETIONS.",
    )
    kube_timeout_seconds: float = _field(
        "VNB_KUBE_TIMEOUT_SECONDS",
        10.0,
        "Timeout of one Kubernetes API call; a timeout is a transient failure (the message is retried).",
    )

    # --- request admission ---------------------------------------------------------------
    allowed_registries: tuple[str, ...] = _field(
        "VNB_ALLOWED_REGISTRIES",
        ("mcr.microsoft.com",),
        "Comma-separated registry hosts or host/path prefixes an image must come from "
        "(`docker.io` covers Docker Hub short names like `busybox`). `*` allows any.",
    )
    key_vault_url: str | None = _field(
        "VNB_KEY_VAULT_URL",
        None,
        "Key Vault (RBAC mode) that a request's `secrets` are read from with the app's managed identity "
        "(role Key Vault Secrets User on this vault), e.g. `https://contoso-batch.vault.azure.net/`. "
        "Unset: requests with `secrets` are rejected.",
    )
    key_vault_secrets: tuple[str, ...] = _field(
        "VNB_KEY_VAULT_SECRETS",
        (),
        "Comma-separated Key Vault secret names a request may ask for in `secrets`; empty allows any "
        "secret of VNB_KEY_VAULT_URL the app's identity can read.",
    )
    acr_registries: tuple[str, ...] = _field(
        "VNB_ACR_REGISTRIES",
        (),
        "Comma-separated login servers of Azure Container Registries the app pulls private images from "
        "with its managed identity (role AcrPull on each), e.g. `contoso.azurecr.io`. Images from them "
        "are allowed like VNB_ALLOWED_REGISTRIES; the app keeps a pull Secret per registry in its namespace "
        "(an ACR refresh token, renewed long before its 3 hours run out).",
    )
    data_account_url: str | None = _field(
        "VNB_DATA_ACCOUNT_URL",
        None,
        "Blob endpoint of the data account a request's `input`/`output` live in, e.g. "
        "`https://contosodata.blob.core.windows.net`. The app mints user delegation SAS URLs with its managed "
        "identity (roles Storage Blob Delegator and Storage Blob Data Contributor on this account). Unset: "
        "requests with `input` or `output` are rejected.",
    )
    data_containers: tuple[str, ...] = _field(
        "VNB_DATA_CONTAINERS",
        (),
        "Comma-separated containers of VNB_DATA_ACCOUNT_URL a request may name in `input`/`output`; empty "
        "allows any. A SAS covers its whole container (blob SAS has no prefix scope without a hierarchical "
        "namespace), so give each trust boundary its own container.",
    )
    default_cpu: Decimal = _field(
        "VNB_DEFAULT_CPU", Decimal(1), "vCPU for a request without `cpu` (ACI's own default is 1)."
    )
    default_memory: int = _field(
        "VNB_DEFAULT_MEMORY",
        parse_memory("1.5G"),
        "Memory for a request without `memory`, as a Kubernetes quantity (ACI's default is 1.5 GB). "
        "Rounded up to 100 MB (decimal) like a request's.",
    )
    max_cpu: Decimal = _field(
        "VNB_MAX_CPU",
        Decimal(4),
        "Largest `cpu` a request may ask for, at most 4 (ACI's per-container-group maximum in most regions). "
        "Compared with the CPU after rounding up to 10m.",
    )
    max_memory: int = _field(
        "VNB_MAX_MEMORY",
        ACI_MAX_MEMORY,
        "Largest `memory` a request may ask for, at most `16G` (16 GB decimal, ACI's per-container-group "
        "maximum in most regions; `16Gi` is 17.2 GB and is refused). Compared with the memory after rounding "
        "up to 100 MB.",
    )
    max_completions: int = _field(
        "VNB_MAX_COMPLETIONS",
        100,
        "Largest `completions` of an array request (ACI's default quota is 100 container groups per region).",
    )
    max_parallelism: int = _field("VNB_MAX_PARALLELISM", 20, "Largest `parallelism` of an array request.")
    default_timeout_seconds: int = _field(
        "VNB_DEFAULT_TIMEOUT_SECONDS",
        3600,
        "`activeDeadlineSeconds` of a Job whose request has no `timeoutSeconds`.",
    )
    max_timeout_seconds: int = _field(
        "VNB_MAX_TIMEOUT_SECONDS", 86400, "Largest `timeoutSeconds` a request may ask for."
    )
    job_ttl_seconds: int = _field(
        "VNB_JOB_TTL_SECONDS",
        86400,
        "`ttlSecondsAfterFinished` backstop: Kubernetes deletes a finished Job after this even if "
        "the reconciler never reported it. Keep it far above the reconcile interval.",
    )

    # --- reconcile (completion events) ---------------------------------------------------
    reconcile_schedule: str = _field(
        "VNB_RECONCILE_SCHEDULE",
        ...,
        "NCRONTAB (six fields, seconds first, UTC) of the reconcile timer that reports finished Jobs.",
    )
    pending_timeout_seconds: int = _field(
        "VNB_PENDING_TIMEOUT_SECONDS",
        900,
        "A Job whose pod stays Pending on the virtual node longer than this (ACI capacity, quota, "
        "image pull) is failed with a `job.failed` event and deleted.",
    )
    keep_finished_seconds: int = _field(
        "VNB_KEEP_FINISHED_SECONDS",
        0,
        "How long a reported Job object is kept (its pods are deleted at once, freeing ACI container "
        "groups), e.g. to inspect it with kubectl. 0 deletes it at once: the request ledger remembers "
        "finished keys, so a late redelivery of the message creates nothing either way.",
    )
    log_tail_lines: int = _field("VNB_LOG_TAIL_LINES", 50, "Lines of pod log carried in completion events.")
    log_tail_bytes: int = _field("VNB_LOG_TAIL_BYTES", 4096, "Bytes of pod log carried in completion events (per pod).")
    followup_seconds: int = _field(
        "VNB_FOLLOWUP_SECONDS",
        2,
        "Visibility delay of the next follow-up reconcile pass while Jobs are in flight (0: none, the "
        "reconcile timer alone reports outcomes). With host.json's 2 s maxPollingInterval, passes run "
        "about every 3 s.",
    )
    reconcile_page_size: int = _field(
        "VNB_RECONCILE_PAGE_SIZE", 200, "Jobs per list page when the reconciler scans (limit/continue)."
    )

    # --- request ledger (Table storage) ----------------------------------------------------
    ledger_table: str = _field(
        "VNB_LEDGER_TABLE",
        "vnbrequests",
        "Table of the request ledger (one entity per request key: state, timestamps, Job name, outcome).",
    )
    ledger_retention_seconds: int = _field(
        "VNB_LEDGER_RETENTION_SECONDS",
        7 * 86400,
        "Ledger entities not updated for this long are purged by the reconcile timer. It is also the "
        "idempotency window for finished requests: keep it above the longest redelivery delay.",
    )

    # --- schedules -----------------------------------------------------------------------
    schedules_file: str = _field(
        "VNB_SCHEDULES_FILE",
        "schedules.json",
        "Periodic batch definitions (relative to the app root).",
    )
    teams_file: str = _field(
        "VNB_TEAMS_FILE",
        "",
        'Teams sharing this app (relative to the app root; docs/operations.md, "Sharing between teams"): '
        "members, capacity shares, priorities and allowlists. Empty: no tenancy, every caller sees every "
        "request and capacity goes first come, first served.",
    )
    easy_auth: bool = _field(
        "VNB_EASY_AUTH",
        False,
        "App Service authentication runs in front of the API (infra sets it): the caller's Entra identity "
        "(X-MS-CLIENT-PRINCIPAL) decides its teams. Off: only function keys do (the headers could be forged).",
    )
    schedules_timer: str = _field(
        "VNB_SCHEDULES_TIMER",
        ...,
        "NCRONTAB of the timer that enqueues due periodic batches; at most once a minute (one seconds value), "
        "else the host turns off the schedule monitor that catch-up needs.",
    )

    # --- bootstrap (aks mode) ------------------------------------------------------------
    subscription_id: str | None = _field("VNB_SUBSCRIPTION_ID", None, "Subscription of the cluster (aks mode).")
    resource_group: str | None = _field(
        "VNB_RESOURCE_GROUP",
        None,
        "Resource group of the cluster, created by infra/; the app's identity has rights only there (aks mode).",
    )
    cluster_name: str = _field("VNB_CLUSTER_NAME", "vnode-batch-aks", "AKS cluster name.")
    location: str | None = _field(
        "VNB_LOCATION", None, "Region of the cluster and network (default: the resource group's)."
    )
    vnet_name: str = _field("VNB_VNET_NAME", "vnetAks", "Virtual network name.")
    vnet_cidr: str = _field("VNB_VNET_CIDR", "10.0.0.0/8", "Virtual network address space.")
    cluster_subnet_name: str = _field("VNB_CLUSTER_SUBNET_NAME", "AksSubnet", "Subnet of the AKS nodes (Azure CNI).")
    cluster_subnet_cidr: str = _field(
        "VNB_CLUSTER_SUBNET_CIDR", "10.240.0.0/16", "Address prefix of the cluster subnet."
    )
    vnode_subnet_name: str = _field(
        "VNB_VNODE_SUBNET_NAME", "vNodeSubnet", "Subnet of the virtual node (delegated to ACI)."
    )
    vnode_subnet_cidr: str = _field(
        "VNB_VNODE_SUBNET_CIDR", "10.241.0.0/16", "Address prefix of the virtual-node subnet."
    )
    service_cidr: str = _field("VNB_SERVICE_CIDR", "10.0.0.0/16", "Kubernetes service CIDR (must overlap no subnet).")
    dns_service_ip: str = _field(
        "VNB_DNS_SERVICE_IP", "10.0.0.10", "Cluster DNS service IP (inside the service CIDR, not its first address)."
    )
    node_count: int = _field("VNB_NODE_COUNT", 1, "System node pool size.")
    node_vm_size: str = _field("VNB_NODE_VM_SIZE", "Standard_D2s_v5", "System node VM size.")
    kubernetes_version: str | None = _field(
        "VNB_KUBERNETES_VERSION", None, "Kubernetes version (default: AKS's default)."
    )
    app_principal_id: str | None = _field(
        "VNB_APP_PRINCIPAL_ID",
        None,
        "Object id of the app's managed identity; bootstrap grants it AKS RBAC Writer on the namespace (aks mode).",
    )
    arm_endpoint: str = _field("VNB_ARM_ENDPOINT", "https://management.azure.com", "Azure Resource Manager endpoint.")
    bootstrap_defer_seconds: int = _field(
        "VNB_BOOTSTRAP_DEFER_SECONDS",
        30,
        "While the cluster is not ready, a request is re-enqueued with this visibility delay.",
    )
    bootstrap_max_wait_seconds: int = _field(
        "VNB_BOOTSTRAP_MAX_WAIT_SECONDS",
        3600,
        "A request waiting longer than this for the cluster ends in a `request.deadlettered` event.",
    )
    permission_grace_seconds: int = _field(
        "VNB_PERMISSION_GRACE_SECONDS",
        900,
        "A bootstrap step refused for a missing role keeps requests waiting this long before they are "
        "dead-lettered: new role assignments can take up to ~10 minutes to apply.",
    )
    ready_cache_seconds: float = _field(
        "VNB_READY_CACHE_SECONDS",
        60.0,
        "How long a process trusts a 'cluster ready' answer before asking ARM/Kubernetes again.",
    )

    # --- cost and idle stop ---------------------------------------------------------------
    price_vcpu_second: Decimal = _field(
        "VNB_PRICE_VCPU_SECOND",
        DEFAULT_PRICE_VCPU_SECOND,
        "Price of one vCPU-second of an ACI Linux container group, in `VNB_PRICE_CURRENCY`, for the `cost` "
        'of job events and `cli cost`. Default: the pay-as-you-go list price of East US (README "Cost").',
    )
    price_gb_second: Decimal = _field(
        "VNB_PRICE_GB_SECOND",
        DEFAULT_PRICE_GB_SECOND,
        "Price of one GB-second (decimal GB) of ACI Linux memory, in `VNB_PRICE_CURRENCY`. Default: East US list price.",
    )
    price_currency: str = _field("VNB_PRICE_CURRENCY", "USD", "ISO 4217 code of the prices (three capital letters).")
    idle_stop_minutes: int | None = _field(
        "VNB_IDLE_STOP_MINUTES",
        None,
        "aks mode: stop the AKS cluster (ARM managedClusters stop) after this many minutes with no Job, no waiting "
        "request and no schedule due within `VNB_CLUSTER_START_SECONDS`; the next request starts it again. "
        'Unset = never stop (docs/operations.md "Idle stop").',
    )
    cluster_start_seconds: int = _field(
        "VNB_CLUSTER_START_SECONDS",
        600,
        "How long a stopped cluster takes to start and show its virtual node Ready (an estimate): no idle stop "
        "happens when a schedule is due sooner than this.",
    )

    # --- capacity (ACI quotas) ----------------------------------------------------------
    # Defaults are ACI's default quotas per subscription and region (Microsoft docs, "Resource
    # availability & quota limits for ACI", learn.microsoft.com/azure/container-instances/
    # container-instances-resource-and-quota-limits). See docs/operations.md "Capacity".
    capacity_container_groups: int = _field(
        "VNB_CAPACITY_CONTAINER_GROUPS",
        100,
        "Container groups (one per running or pending pod) the app may hold at once: your ACI quota in this "
        "region, minus what else in the subscription uses it. A request that does not fit waits on the queue.",
    )
    capacity_cores: int = _field(
        "VNB_CAPACITY_CORES",
        100,
        "vCPU the app's pods may hold at once (after ACI's rounding): your ACI standard-cores quota in this "
        "region, minus what else in the subscription uses it.",
    )
    capacity_creates_per_5min: int = _field(
        "VNB_CAPACITY_CREATES_PER_5MIN",
        100,
        "Container-group creates the app may make in any 5 minutes: your ACI quota in this region, minus what "
        "else in the subscription creates.",
    )
    capacity_creates_per_hour: int = _field(
        "VNB_CAPACITY_CREATES_PER_HOUR",
        300,
        "Container-group creates the app may make in any hour: your ACI quota in this region, minus what else "
        "in the subscription creates.",
    )
    capacity_window_seconds: tuple[int, int] = _field(
        "VNB_CAPACITY_WINDOW_SECONDS",
        (300, 3600),
        "Lengths of ACI's two create-rate windows in seconds, short,long (ACI: 5 minutes and an hour). "
        "Change only if ACI changes them (or to compress time in a benchmark).",
    )
    capacity_max_wait_seconds: int = _field(
        "VNB_CAPACITY_MAX_WAIT_SECONDS",
        86400,
        "A request waiting longer than this for capacity ends in a `request.deadlettered` event, reason "
        "`CapacityTimeout`.",
    )
    capacity_max_attempts: int = _field(
        "VNB_CAPACITY_MAX_ATTEMPTS",
        5,
        "Times a request whose pod ACI refused for quota, capacity or throttling goes back to the queue; the "
        "next refusal ends it in `job.failed`, reason `CapacityExhausted`.",
    )
    capacity_defer_seconds: int = _field(
        "VNB_CAPACITY_DEFER_SECONDS",
        20,
        "Longest visibility delay of a request waiting for capacity; the oldest waiting requests come back "
        "sooner (down to a quarter of it), so they get freed capacity first.",
    )
    capacity_cache_seconds: float = _field(
        "VNB_CAPACITY_CACHE_SECONDS",
        5.0,
        "How long a process trusts its view of the capacity in use (two Kubernetes list calls) before listing "
        "again; its own creates are added meanwhile.",
    )

    # --- validators ----------------------------------------------------------------------
    @field_validator("allowed_registries", mode="before")
    @classmethod
    def _split_registries(cls, value: object) -> object:
        if isinstance(value, str):
            items = tuple(part.strip().rstrip("/").lower() for part in value.split(",") if part.strip())
            if not items:
                raise ValueError("list at least one registry, e.g. `mcr.microsoft.com`, or `*`")
            return items
        return value

    @field_validator("acr_registries", mode="before")
    @classmethod
    def _split_servers(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().rstrip("/").lower() for part in value.split(",") if part.strip())
        return value

    @field_validator("key_vault_secrets", "data_containers", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("data_account_url")
    @classmethod
    def _data_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith("https://"):
            raise ValueError(
                "must be the account's https:// blob endpoint, e.g. `https://contosodata.blob.core.windows.net`"
            )
        return value.rstrip("/")

    @field_validator("key_vault_url")
    @classmethod
    def _vault_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith("https://"):
            raise ValueError("must be the vault's https:// URL, e.g. `https://contoso-batch.vault.azure.net/`")
        return value.rstrip("/") + "/"

    @field_validator("default_cpu", "max_cpu", mode="before")
    @classmethod
    def _cpu(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_cpu(value)
        return value

    @field_validator("default_memory", "max_memory", mode="before")
    @classmethod
    def _memory(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_memory(value)
        return value

    @field_validator("ledger_table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", value) or value.lower() == "tables":
            raise ValueError("a table name is 3-63 letters and digits, starting with a letter (not `tables`)")
        return value

    @field_validator("ledger_retention_seconds")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value < 3600:
            raise ValueError("must be at least 3600 (an hour): it bounds the redelivery idempotency window")
        return value

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

    @field_validator("requests_queue", "events_queue", "followup_queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        if not _QUEUE_NAME.fullmatch(value):
            raise ValueError(
                "a queue name is 3-63 lowercase letters, digits and single hyphens, "
                "starting and ending with a letter or digit"
            )
        return value

    @field_validator("requests_queue")
    @classmethod
    def _has_a_poison_queue(cls, value: str) -> str:
        # The host gives a trigger queue a poison queue only if the name does not end in
        # "-poison" and "<name>-poison" is itself a valid (<= 63 characters) queue name
        # (azure-sdk-for-net Microsoft.Azure.WebJobs.Extensions.Storage.Queues/src/Listeners/
        # QueueListenerFactory.cs CreatePoisonQueueReference). Without one, a request that keeps
        # failing is never moved, never dead-lettered: it stays in the queue, skipped, until its TTL.
        if value.endswith(_POISON_SUFFIX) or len(value) + len(_POISON_SUFFIX) > _MAX_QUEUE_NAME:
            raise ValueError(
                f"must be at most {_MAX_QUEUE_NAME - len(_POISON_SUFFIX)} characters and not end in "
                f"'{_POISON_SUFFIX}': the host moves failing requests to '<name>{_POISON_SUFFIX}', "
                "and gives no poison queue otherwise"
            )
        return value

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

    @field_validator("vnet_cidr", "cluster_subnet_cidr", "vnode_subnet_cidr", "service_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            ipaddress.IPv4Network(value, strict=True)
        except ValueError as e:
            raise ValueError(f"not an IPv4 CIDR with host bits zero ({e})") from e
        return value

    @field_validator("dns_service_ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            ipaddress.IPv4Address(value)
        except ValueError as e:
            raise ValueError(f"not an IPv4 address ({e})") from e
        return value

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

    @field_validator("price_vcpu_second", "price_gb_second", mode="before")
    @classmethod
    def _price_text(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return Decimal(value.strip())
            except ArithmeticError:
                raise ValueError(f"not a number: {value!r} (e.g. `0.00001125`)") from None
        return value

    @field_validator("price_vcpu_second", "price_gb_second")
    @classmethod
    def _price(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value < 0:
            raise ValueError("must be a number of 0 or more (a price per second, e.g. `0.00001125`)")
        return value

    @field_validator("price_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.fullmatch(value):
            raise ValueError("an ISO 4217 currency code: three capital letters, e.g. `USD`, `EUR`")
        return value

    @field_validator("idle_stop_minutes", "cluster_start_seconds")
    @classmethod
    def _positive_optional(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("must be a whole number of at least 1")
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
        if not _DNS_LABEL.fullmatch(ns):
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

    @property
    def poison_queue(self) -> str:
        return f"{self.requests_queue}{_POISON_SUFFIX}"

    @property
    def allows_any_registry(self) -> bool:
        return "*" in self.allowed_registries

    @property
    def prices(self) -> Prices:
        """The ACI prices the cost of a Job is computed with (``shared.cost.pricing``)."""

        return Prices(vcpu_second=self.price_vcpu_second, gb_second=self.price_gb_second, currency=self.price_currency)


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


@dataclass(frozen=True)
class Prices:
    """List prices: currency units per vCPU-second and per GB-second (decimal GB)."""

    vcpu_second: Decimal
    gb_second: Decimal
    currency: str

    def as_dict(self) -> dict[str, Any]:
        return {"currency": self.currency, "vcpuSecond": str(self.vcpu_second), "gbSecond": str(self.gb_second)}
