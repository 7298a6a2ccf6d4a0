"""Settings of what a request may ask for: registries, secrets, data, and the size and time limits
of its Job (bounded by what ACI offers)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import field_validator

from shared.base.quantity import parse_cpu, parse_memory
from shared.config.fields import SettingsGroup, setting

ACI_MAX_CPU = Decimal(4)
"""vCPU per container group ACI offers in most regions (ACI "resource availability" doc;
../shared/reference/virtual-node.md): more fails, usually on capacity."""
ACI_MAX_MEMORY = 16 * 10**9
"""Bytes per container group ACI offers in most regions: 16 GB *decimal*. 16Gi is 17.18 GB
and 15Gi 16.1 GB as the virtual node converts them (azure-aci ``getContainers``): both fail."""


class WorkloadSettings(SettingsGroup):
    """Request admission: what a Job may use and how large and long it may be."""

    allowed_registries: tuple[str, ...] = setting(
        "VNB_ALLOWED_REGISTRIES",
        ("mcr.microsoft.com",),
        "Comma-separated registry hosts or host/path prefixes an image must come from "
        "(`docker.io` covers Docker Hub short names like `busybox`). `*` allows any.",
    )
    key_vault_url: str | None = setting(
        "VNB_KEY_VAULT_URL",
        None,
        "Key Vault (RBAC mode) that a request's `secrets` are read from with the app's managed identity "
        "(role Key Vault Secrets User on this vault), e.g. `https://contoso-batch.vault.azure.net/`. "
        "Unset: requests with `secrets` are rejected.",
    )
    key_vault_secrets: tuple[str, ...] = setting(
        "VNB_KEY_VAULT_SECRETS",
        (),
        "Comma-separated Key Vault secret names a request may ask for in `secrets`; empty allows any "
        "secret of VNB_KEY_VAULT_URL the app's identity can read.",
    )
    acr_registries: tuple[str, ...] = setting(
        "VNB_ACR_REGISTRIES",
        (),
        "Comma-separated login servers of Azure Container Registries the app pulls private images from "
        "with its managed identity (role AcrPull on each), e.g. `contoso.azurecr.io`. Images from them "
        "are allowed like VNB_ALLOWED_REGISTRIES; the app keeps a pull Secret per registry in its namespace "
        "(an ACR refresh token, renewed long before its 3 hours run out).",
    )
    data_account_url: str | None = setting(
        "VNB_DATA_ACCOUNT_URL",
        None,
        "Blob endpoint of the data account a request's `input`/`output` live in, e.g. "
        "`https://contosodata.blob.core.windows.net`. The app mints user delegation SAS URLs with its managed "
        "identity (roles Storage Blob Delegator and Storage Blob Data Contributor on this account). Unset: "
        "requests with `input` or `output` are rejected.",
    )
    data_containers: tuple[str, ...] = setting(
        "VNB_DATA_CONTAINERS",
        (),
        "Comma-separated containers of VNB_DATA_ACCOUNT_URL a request may name in `input`/`output`; empty "
        "allows any. A SAS covers its whole container (blob SAS has no prefix scope without a hierarchical "
        "namespace), so give each trust boundary its own container.",
    )
    default_cpu: Decimal = setting(
        "VNB_DEFAULT_CPU", Decimal(1), "vCPU for a request without `cpu` (ACI's own default is 1)."
    )
    default_memory: int = setting(
        "VNB_DEFAULT_MEMORY",
        parse_memory("1.5G"),
        "Memory for a request without `memory`, as a Kubernetes quantity (ACI's default is 1.5 GB). "
        "Rounded up to 100 MB (decimal) like a request's.",
    )
    max_cpu: Decimal = setting(
        "VNB_MAX_CPU",
        Decimal(4),
        "Largest `cpu` a request may ask for, at most 4 (ACI's per-container-group maximum in most regions). "
        "Compared with the CPU after rounding up to 10m.",
    )
    max_memory: int = setting(
        "VNB_MAX_MEMORY",
        ACI_MAX_MEMORY,
        "Largest `memory` a request may ask for, at most `16G` (16 GB decimal, ACI's per-container-group "
        "maximum in most regions; `16Gi` is 17.2 GB and is refused). Compared with the memory after rounding "
        "up to 100 MB.",
    )
    max_completions: int = setting(
        "VNB_MAX_COMPLETIONS",
        100,
        "Largest `completions` of an array request (ACI's default quota is 100 container groups per region).",
    )
    max_parallelism: int = setting("VNB_MAX_PARALLELISM", 20, "Largest `parallelism` of an array request.")
    default_timeout_seconds: int = setting(
        "VNB_DEFAULT_TIMEOUT_SECONDS",
        3600,
        "`activeDeadlineSeconds` of a Job whose request has no `timeoutSeconds`.",
    )
    max_timeout_seconds: int = setting(
        "VNB_MAX_TIMEOUT_SECONDS", 86400, "Largest `timeoutSeconds` a request may ask for."
    )
    job_ttl_seconds: int = setting(
        "VNB_JOB_TTL_SECONDS",
        86400,
        "`ttlSecondsAfterFinished` backstop: Kubernetes deletes a finished Job after this even if "
        "the reconciler never reported it. Keep it far above the reconcile interval.",
    )

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

    @property
    def allows_any_registry(self) -> bool:
        return "*" in self.allowed_registries
