"""Request schema v1: what a queue message may ask for (pure; pydantic).

A request is validated completely before anything is created: unknown fields are refused,
every size is bounded, the image must come from an allowed registry and cpu/memory must
fit what ACI (the virtual node) can run. Failures carry field-level errors that go, with
the original body, into a ``request.rejected`` event.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.base import kube_names
from shared.base.conventions import JOB_CONTROLLER_LABELS, REQUEST_LABEL_PREFIXES
from shared.base.errors import FieldError
from shared.base.quantity import (
    aci_cpu,
    aci_memory,
    format_cpu,
    human_memory,
    human_memory_decimal,
    parse_cpu,
    parse_memory,
)
from shared.config.settings import Settings

SCHEMA_VERSION = "v1"
MAX_BODY_BYTES = 48 * 1024  # a queue message carries at most 64 KiB, 48 KiB of it once base64-encoded
MAX_ENV_BYTES = 32 * 1024
MIN_CPU = Decimal("0.1")
MIN_MEMORY = 128 * 1024 * 1024  # 128Mi

_KEY = r"^[A-Za-z0-9](?:[A-Za-z0-9._:@+-]{0,126}[A-Za-z0-9])?$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# docker/distribution reference grammar, simplified: [registry/]path[:tag][@digest]. Always used
# with fullmatch: Python's `$` also matches before a final "\n" (RE2's, in Go, does not).
_IMAGE = re.compile(
    r"(?:(?P<registry>[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[a-z0-9]+:[a-f0-9]{32,}))?"
)

Key = Annotated[str, StringConstraints(pattern=_KEY)]
TEAM_PATTERN: Final = r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$"
TeamName = Annotated[str, StringConstraints(pattern=TEAM_PATTERN)]
PRIORITIES: Final = ("low", "normal", "high", "urgent")
"""Priorities, lowest first (a request without one is ``normal``)."""
Priority = Literal["low", "normal", "high", "urgent"]
_CORRELATION_ID = r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$"
MAX_CORRELATION_ID = 256
Arg = Annotated[str, StringConstraints(max_length=4096)]
EnvName = Annotated[str, StringConstraints(pattern=_ENV_NAME, max_length=128)]
# min_length 1: azure-aci getContainers (pkg/provider/aci.go) passes only variables whose value
# is not empty, so an empty one would silently be missing in the container.
EnvValue = Annotated[str, StringConstraints(min_length=1, max_length=8192)]
# A file of the per-request Secret volume: a Secret data key (Kubernetes IsConfigMapKey:
# [-._a-zA-Z0-9]+, not `.`/`..`), kept to an env-name-like form so `$DB_PASSWORD`-style names work.
_SECRET_FILE = r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$"  # noqa: S105 - a pattern
# Key Vault object names: 1-127 alphanumerics and hyphens (Key Vault docs "About keys, secrets,
# and certificates", object identifiers).
_VAULT_SECRET = r"^[0-9A-Za-z-]{1,127}$"  # noqa: S105 - a pattern
SecretFile = Annotated[str, StringConstraints(pattern=_SECRET_FILE)]
VaultSecretName = Annotated[str, StringConstraints(pattern=_VAULT_SECRET)]
MAX_SECRETS = 20
# Blob container names (Storage docs "Naming and referencing containers, blobs, and metadata"):
# 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.
_CONTAINER = r"^[a-z0-9](?:-?[a-z0-9]){2,62}$"
# A blob name prefix: printable, no backslash (the blob service folds it to `/`), no `..` segment.


class BlobLocation(BaseModel):
    """A place in the data account (VNB_DATA_ACCOUNT_URL): a container and a blob name prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    container: str = Field(..., max_length=63, pattern=_CONTAINER, description="Blob container in the data account.")
    prefix: str = Field(
        "",
        max_length=512,
        pattern=r"^[^\\\x00-\x1f\x7f]*$",
        description="Blob name prefix, e.g. `runs/2026-12-06/`; empty: the whole container.",
    )

    @field_validator("prefix")
    @classmethod
    def _no_dot_segments(cls, value: str) -> str:
        if any(part in (".", "..") for part in value.split("/")):
            raise ValueError("no `.` or `..` segments")
        return value


class RequestInvalid(ValueError):
    """The message can never become a Job; retrying cannot help."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


class BatchRequest(BaseModel):
    """A request to run a container as a Kubernetes Job on the virtual node (schema v1)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        str_strip_whitespace=False,
        title="vnode-batch request v1",
    )

    id: Key | None = Field(
        None,
        description="Idempotency key. The same id always maps to the same Job; a redelivered "
        "message with the same id and content creates nothing new. Default: the queue message id.",
    )
    image: str = Field(
        ...,
        max_length=512,
        description="Container image, from a registry allowed by VNB_ALLOWED_REGISTRIES.",
        examples=["mcr.microsoft.com/azurelinux/base/core:3.0"],
    )
    command: list[Arg] | None = Field(None, max_length=64, description="Entrypoint (replaces the image's).")
    args: list[Arg] | None = Field(
        None,
        max_length=256,
        description="Arguments. The virtual node needs `command` whenever `args` is given.",
    )
    env: dict[EnvName, EnvValue] | None = Field(
        None,
        max_length=100,
        description="Environment variables (plain strings, 32 KiB in all), passed literally: `$` and "
        "`$(NAME)` are not expanded. Names are letters, digits and `_`, not starting with a digit; "
        "values may not be empty (the virtual node drops empty variables).",
    )
    secrets: dict[SecretFile, VaultSecretName] | None = Field(
        None,
        max_length=MAX_SECRETS,
        description="Files from Key Vault: file name → secret name in the vault of VNB_KEY_VAULT_URL. At "
        "dispatch the app reads each secret with its managed identity and mounts it as the file "
        "`/var/run/secrets/vnode-batch/<file name>` (never as an environment variable). A secret that "
        "does not exist or that the app may not read rejects the request.",
        examples=[{"DB_PASSWORD": "db-password"}],
    )
    input: BlobLocation | None = Field(
        None,
        description="Blobs to read, in the data account of VNB_DATA_ACCOUNT_URL. The container gets "
        "`/var/run/secrets/vnode-batch/VNB_INPUT_URL` (the container's URL with a user delegation SAS: read and "
        "list, until the Job's deadline plus a margin) and `VNB_INPUT_PREFIX` in its environment.",
    )
    output: BlobLocation | None = Field(
        None,
        description="Where results go, in the data account of VNB_DATA_ACCOUNT_URL: the file "
        "`/var/run/secrets/vnode-batch/VNB_OUTPUT_URL` (SAS: create, write and list) and `VNB_OUTPUT_PREFIX`. "
        "`job.succeeded`/`job.failed` list what is under the prefix when the Job ends.",
    )
    cpu: str | float | int | None = Field(
        None,
        description="vCPU (number or Kubernetes quantity like `500m`); requests = limits, rounded up to a "
        "multiple of 10m, the step ACI takes (`125m` runs as `130m`).",
    )
    memory: str | int | None = Field(
        None,
        description="Memory as a Kubernetes quantity (`512Mi`, `1.5G`); requests = limits, rounded up to "
        "100 MB decimal, the step ACI takes (`1.5Gi` = 1.61 GB runs as `1700M`).",
    )
    completions: StrictInt = Field(
        1, ge=1, description="Number of successful runs wanted; > 1 makes an Indexed Job (JOB_COMPLETION_INDEX)."
    )
    parallelism: StrictInt | None = Field(
        None, ge=1, description="How many indexes run at once (default: min(completions, VNB_MAX_PARALLELISM))."
    )
    timeoutSeconds: StrictInt | None = Field(  # noqa: N815 - wire name
        None, ge=1, description="Job activeDeadlineSeconds (default VNB_DEFAULT_TIMEOUT_SECONDS)."
    )
    retries: StrictInt = Field(
        0, ge=0, le=10, description="Retries per run (backoffLimit; per index for array requests)."
    )
    labels: dict[str, str] | None = Field(
        None,
        max_length=20,
        description="Extra Kubernetes labels on the Job and its pods (the API server's key and value rules). "
        "Keys without a prefix, or `app.kubernetes.io/` with `name`, `instance`, `version`, `component` or "
        "`part-of`; other prefixes are refused, since other systems act on them (`kubernetes.io`, "
        "`azure.workload.identity`, `istio.io`, `virtual-kubelet.io`, ...). `job-name` and `controller-uid` "
        "are the Job controller's.",
    )
    team: TeamName | None = Field(
        None,
        description="The team the request runs for (VNB_TEAMS_FILE): its capacity share, priorities, secrets, "
        "registries and data prefixes apply. A queue message names it; the HTTP API takes it from the caller's "
        "identity (a body naming another of the caller's teams picks that one). Required once a teams file is "
        "configured.",
    )
    priority: Priority | None = Field(
        None,
        description="Order among the team's own waiting requests: `low` < `normal` (default) < `high` < `urgent`; "
        "the team's entry in the teams file says which it may use.",
    )
    correlationId: str | None = Field(  # noqa: N815 - wire name
        None,
        min_length=1,
        max_length=MAX_CORRELATION_ID,
        pattern=_CORRELATION_ID,
        description="Echoed in every event about this request.",
    )

    @field_validator("image")
    @classmethod
    def _image(cls, value: str, info: ValidationInfo) -> str:
        match = _IMAGE.fullmatch(value)
        if not match:
            raise ValueError("not a valid image reference (e.g. `mcr.microsoft.com/azurelinux/base/core:3.0`)")
        settings = _settings(info)
        if settings is not None and not settings.allows_any_registry:
            full = normalize_image(value)
            prefixes = (*settings.allowed_registries, *settings.acr_registries)
            if not any(full == r or full.startswith(r + "/") for r in prefixes):
                allowed = ", ".join(prefixes)
                raise ValueError(
                    f"registry of {full.split('/', 1)[0]!r} is not allowed; allowed: {allowed} (VNB_ALLOWED_REGISTRIES)"
                )
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        size = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
        if size > MAX_ENV_BYTES:
            raise ValueError(f"env is {size} bytes; at most {MAX_ENV_BYTES} bytes in all")
        reserved = sorted(k for k in value if k.startswith("VNB_") or k == "JOB_COMPLETION_INDEX")
        if reserved:
            raise ValueError(f"names reserved by vnode-batch: {', '.join(reserved)}")
        return value

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: dict[str, str] | None, info: ValidationInfo) -> dict[str, str] | None:
        if not value:
            return value
        reserved = sorted(k for k in value if k.startswith("VNB_"))
        if reserved:
            raise ValueError(f"file names reserved by vnode-batch: {', '.join(reserved)}")
        settings = _settings(info)
        if settings is None:
            return value
        if settings.key_vault_url is None:
            raise ValueError("no Key Vault is configured (VNB_KEY_VAULT_URL): this app cannot provide secrets")
        if settings.key_vault_secrets:
            refused = sorted({v for v in value.values() if v not in settings.key_vault_secrets})
            if refused:
                raise ValueError(f"not in the allowed Key Vault secrets (VNB_KEY_VAULT_SECRETS): {', '.join(refused)}")
        return value

    @field_validator("input", "output")
    @classmethod
    def _data(cls, value: BlobLocation | None, info: ValidationInfo) -> BlobLocation | None:
        settings = _settings(info)
        if value is None or settings is None:
            return value
        if settings.data_account_url is None:
            raise ValueError("no data account is configured (VNB_DATA_ACCOUNT_URL): this app cannot provide blobs")
        if settings.data_containers and value.container not in settings.data_containers:
            allowed = ", ".join(settings.data_containers)
            raise ValueError(f"container {value.container!r} is not allowed; allowed: {allowed} (VNB_DATA_CONTAINERS)")
        return value

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _number_or_quantity(cls, value: object, info: ValidationInfo) -> object:
        # JSON true is not a number (docs/schemas/request.v1.json gives cpu and memory as string,
        # number or integer), but pydantic's lax int/float would read it as 1, as for completions.
        # Checked here, before the str | int union, so an error names the field alone (`memory`),
        # not each union member (`memory.str`, `memory.int`).
        if isinstance(value, bool):
            raise ValueError(f"must be a number or a Kubernetes quantity string, not {str(value).lower()}")
        if value is not None and not isinstance(value, str | int | float):
            raise ValueError("must be a number or a Kubernetes quantity string")
        if info.field_name == "memory" and isinstance(value, float) and not value.is_integer():
            raise ValueError(
                f"{value!r} is not a whole number of bytes: give a quantity string such as `1.5G` or `512Mi`"
            )
        return value

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str | float | int | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        cores = parse_cpu(value)
        if cores < MIN_CPU:
            raise ValueError("at least 0.1 vCPU (100m)")
        settings = _settings(info)
        applied = aci_cpu(cores)
        if settings is not None and applied > settings.max_cpu:
            rounded = "" if applied == cores else f" ({format_cpu(applied)} once rounded up to ACI's 10m steps)"
            raise ValueError(
                f"{format_cpu(cores)} vCPU{rounded} is above the limit of {format_cpu(settings.max_cpu)} "
                "(VNB_MAX_CPU, ACI container groups)"
            )
        return format_cpu(cores)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | int | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        size = parse_memory(value)
        if size < MIN_MEMORY:
            raise ValueError("at least 128Mi")
        settings = _settings(info)
        applied = aci_memory(size)
        if settings is not None and applied > settings.max_memory:
            raise ValueError(
                f"{value} ({human_memory_decimal(applied)} in ACI's 0.1 GB steps) is above the limit of "
                f"{human_memory_decimal(settings.max_memory)} (VNB_MAX_MEMORY, ACI container groups)"
            )
        return human_memory(size) if size % (1024 * 1024) == 0 else str(size)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        problems = []
        for key, val in value.items():
            prefix, _, name = key.rpartition("/")
            key_problems = kube_names.label_key(key)
            if key_problems:
                problems.append(f"label {key!r}: {'; '.join(key_problems)}")
            elif not prefix and name in JOB_CONTROLLER_LABELS:
                problems.append(
                    f"label {key!r}: set by the Kubernetes Job controller on every pod; the batch API refuses "
                    "a Job that sets it (use another name, e.g. `app`)"
                )
            elif not _allowed_label(prefix, name):
                problems.append(
                    f"label {key!r}: not allowed (prefix reserved or acted on by Kubernetes, other systems or "
                    f"vnode-batch); use {_ALLOWED_LABELS}"
                )
            value_problems = kube_names.label_value(val)
            if value_problems:
                problems.append(f"label {key!r}: value {'; '.join(value_problems)}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _cross(self, info: ValidationInfo) -> BatchRequest:
        problems = []
        if self.args and not self.command:
            problems.append("`args` without `command` is not supported on the virtual node; give `command` too")
        settings = _settings(info)
        if settings is not None:
            if self.completions > settings.max_completions:
                problems.append(
                    f"completions {self.completions} is above {settings.max_completions} (VNB_MAX_COMPLETIONS)"
                )
            if self.parallelism is not None and self.parallelism > settings.max_parallelism:
                problems.append(
                    f"parallelism {self.parallelism} is above {settings.max_parallelism} (VNB_MAX_PARALLELISM)"
                )
            if self.timeoutSeconds is not None and self.timeoutSeconds > settings.max_timeout_seconds:
                problems.append(
                    f"timeoutSeconds {self.timeoutSeconds} is above {settings.max_timeout_seconds} (VNB_MAX_TIMEOUT_SECONDS)"
                )
        if self.parallelism is not None and self.parallelism > self.completions:
            problems.append("parallelism cannot exceed completions")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def content_hash(self) -> str:
        """A stable hash of what the request asks for (the id excluded), to detect a reused id."""
        body = self.model_dump(mode="json", exclude={"id"}, exclude_none=True)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _allowed_label(prefix: str, name: str) -> bool:
    """Whether a request may set label ``prefix/name`` (REQUEST_LABEL_PREFIXES, an allowlist).

    Labels go onto the pod template too, where other systems act on them (the workload identity
    webhook, service meshes, the virtual node), so only prefixes known to be inert are allowed.
    """
    if prefix not in REQUEST_LABEL_PREFIXES:
        return False
    names = REQUEST_LABEL_PREFIXES[prefix]
    return names is None or name in names


_ALLOWED_LABELS = "a name without prefix, or " + ", ".join(
    f"{p}/{n}" for p, names in REQUEST_LABEL_PREFIXES.items() if p and names for n in sorted(names)
)


def _settings(info: ValidationInfo) -> Settings | None:
    context = info.context
    if isinstance(context, dict):
        value = context.get("settings")
        if isinstance(value, Settings):
            return value
    return None


def normalize_image(image: str) -> str:
    """The full reference as a registry sees it: ``busybox`` → ``docker.io/library/busybox``.

    Follows distribution/reference ``splitDockerDomain`` (normalize.go): the first path
    component is a registry host when it is ``localhost``, contains ``.`` or ``:``, or has an
    upper-case letter (repository names are lower case, so ``EVIL/x`` names the host ``EVIL``,
    not the Docker Hub namespace ``evil``); ``index.docker.io`` is Docker Hub. The host is
    lower-cased here for comparison with the allowlist (host names are case-insensitive).
    """
    first, sep, rest = image.partition("/")
    if not sep:
        return f"docker.io/library/{image}"
    if first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, remote = first.lower(), rest
    else:
        domain, remote = "docker.io", image
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remote:
        remote = "library/" + remote
    return f"{domain}/{remote}"


def as_key(value: object) -> str | None:
    """``value`` if it is a valid request ``id`` (1-128 characters, see the schema), else None."""
    return value if isinstance(value, str) and re.fullmatch(_KEY, value) else None


def as_correlation_id(value: object) -> str | None:
    """``value`` if it is a valid ``correlationId`` (printable ASCII, at most 256), else None."""
    if isinstance(value, str) and len(value) <= MAX_CORRELATION_ID and re.fullmatch(_CORRELATION_ID, value):
        return value
    return None


def parse_request(data: dict[str, Any], *, settings: Settings) -> BatchRequest:
    """Validate a decoded JSON object; raise RequestInvalid with every field error."""
    try:
        return BatchRequest.model_validate(data, context={"settings": settings})
    except ValidationError as e:
        raise RequestInvalid([_field_error(item) for item in e.errors()]) from None


def _field_error(item: Any) -> FieldError:
    parts = [str(part) for part in item.get("loc", ()) if part != "[key]"]
    loc = ".".join(parts) or "$"
    kind = item.get("type", "")
    message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and parts:
        message = _PATTERN_HELP.get(parts[0], message) + " (pattern mismatch)"
    if kind == "string_too_short" and parts[:1] == ["env"]:
        message = (
            "empty value: the virtual node drops environment variables with an empty value, "
            "so the container would not see it; leave it out or give a value"
        )
    if kind == "extra_forbidden":
        message = "unknown field (schema v1 accepts: " + ", ".join(_FIELDS) + ")"
    elif kind == "missing":
        message = "required"
    return FieldError(loc, message)


_PATTERN_HELP = {
    "team": "a team name: 1-32 lowercase letters, digits and -, starting and ending with a letter or digit",
    "id": "1-128 characters: letters, digits and . _ : @ + -, starting and ending with a letter or digit",
    "env": "an environment variable name is letters, digits and _, not starting with a digit",
    "correlationId": "printable ASCII without leading or trailing spaces",
    "secrets": "a file name is letters, digits, `_`, `.` and `-` (not starting with `.`/`-`/a digit, at most 63); "
    "a Key Vault secret name is 1-127 letters, digits and `-`",
}

_FIELDS = tuple(f.alias or name for name, f in BatchRequest.model_fields.items())
