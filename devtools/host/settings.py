"""Settings resolution, host.json options and storage connections, as the host reads them.

Sources: Core Tools exports ``local.settings.json`` ``Values`` as environment variables of the
host and the worker (azure-functions-core-tools ``SecretsManager``/``StartHostAction``); the host
resolves ``%Name%`` binding tokens from app settings (azure-webjobs-sdk
``src/Microsoft.Azure.WebJobs.Host/DefaultNameResolver.cs`` ``Resolve`` /
``BindingTemplateSource``); host.json ``extensions.queues`` is the Storage extension's
``QueuesOptions`` (azure-sdk-for-net
``sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/QueuesOptions.cs``);
connections follow the extension's ``QueueServiceClientProvider``/``StorageClientProvider``
(azure-sdk-for-net ``…Storage.Queues/src/QueueServiceClientProvider.cs``, and
``Microsoft.Extensions.Azure`` ``ClientFactory.CreateClient``: a connection named ``X`` is the
setting ``X`` (or ``AzureWebJobsX``) holding a connection string, or the section ``X__*`` with
``queueServiceUri``/``serviceUri``, ``credential`` = ``managedidentity`` and ``clientId``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from azure.storage.queue import ExponentialRetry, QueueClient

# QueuePollingIntervals.Minimum in the Storage extension.
MIN_POLLING_INTERVAL_S = 0.1
DEFAULT_STORAGE_SETTING = "AzureWebJobsStorage"
# Azurite's (and the Storage emulator's) published development account key: not a secret.
DEV_ACCOUNT = "devstoreaccount1"
_DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEVELOPMENT_STORAGE_CONNECTION = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    f"AccountKey={_DEV_KEY};QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)
_TOKEN = re.compile(r"%([^%]+)%")
_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?")
_SECRET = re.compile(r"(AccountKey|SharedAccessSignature|SharedAccessKey)=[^;]*", re.IGNORECASE)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class HostError(Exception):
    """The app, its settings or host.json cannot be run (the host would refuse them too)."""


def mask_connection_string(value: str) -> str:
    """``value`` with account keys and SAS tokens replaced by ``***`` (safe to log)."""
    return _SECRET.sub(lambda m: f"{m.group(1)}=***", value)


def load_local_settings(path: Path | str) -> dict[str, str]:
    """The ``Values`` of a Core Tools ``local.settings.json`` as strings.

    Core Tools refuses encrypted files it cannot decrypt; so do we. Numbers and booleans are
    turned into their JSON text, so ``true`` stays ``"true"`` as the host would read it.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise HostError(f"{path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise HostError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise HostError(f"{path}: expected a JSON object with a 'Values' object")
    if doc.get("IsEncrypted") is True:
        raise HostError(f"{path} is encrypted (IsEncrypted: true); decrypt it with "
                          "`func settings decrypt` first")
    values = doc.get("Values", {})
    if not isinstance(values, dict):
        raise HostError(f"{path}: 'Values' must be an object of strings")
    out: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, str):
            out[str(key)] = value
        elif isinstance(value, (bool, int, float)):
            out[str(key)] = json.dumps(value)
        elif value is None:
            continue
        else:
            raise HostError(f"{path}: setting {key!r} must be a string, not {type(value).__name__}")
    return out


def resolve_setting_tokens(value: str, settings: Mapping[str, str], *, function_name: str) -> str:
    """Replace every ``%Name%`` in ``value`` with ``settings[Name]``, as the host does.

    A missing setting fails indexing with the host's wording ("... does not resolve to a
    value"), naming the setting, so a typo in local.settings.json is caught at start-up.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in settings:
            raise HostError(
                f"Error indexing method 'Functions.{function_name}': '%{name}%' does not resolve "
                f"to a value: the app setting '{name}' is missing (add it to local.settings.json "
                "Values or the environment)")
        return settings[name]

    return _TOKEN.sub(substitute, value)


_export_lock = threading.RLock()


@contextlib.contextmanager
def exported_settings(settings: Mapping[str, str]) -> Iterator[None]:
    """Expose ``settings`` as environment variables for the duration of the block.

    Core Tools sets every ``local.settings.json`` value as an environment variable of the
    host and the worker, and the app reads its configuration with ``os.environ``; this does
    the same inside one process. Previous values are restored (or removed) on exit, so blocks
    must be nested, not interleaved: ``os.environ`` is process-global.
    """
    with _export_lock:
        previous = {key: os.environ.get(key) for key in settings}
        os.environ.update(settings)
    try:
        yield
    finally:
        with _export_lock:
            for key, old in previous.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old




def parse_timespan(value: object, *, setting: str, numbers_are_ms: bool = False) -> float:
    """Seconds in a host.json TimeSpan (``[d.]hh:mm[:ss[.fffffff]]``).

    ``numbers_are_ms`` accepts the Functions 1.x form (a JSON number of milliseconds), which
    the docs still show for ``maxPollingInterval``.
    """
    if numbers_are_ms and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 1000.0
    if isinstance(value, str):
        match = _TIMESPAN.fullmatch(value.strip())
        if match:
            days, hours, minutes, seconds, fraction = match.groups()
            if int(hours) < 24 and int(minutes) < 60 and int(seconds or 0) < 60:
                return (int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60
                        + int(seconds or 0) + float(f"0.{fraction or 0}"))
    raise HostError(f"host.json {setting}: {value!r} is not a TimeSpan like \"00:00:30\"")




@dataclasses.dataclass(frozen=True)
class QueuesOptions:
    """host.json ``extensions.queues`` with the host's defaults and limits (seconds for times)."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: Literal["base64", "none"] = "base64"

    @classmethod
    def from_host_json(cls, host_json: Mapping[str, Any]) -> QueuesOptions:
        """Read ``extensions.queues`` (keys are case-insensitive, as in the host's config)."""
        extensions = _lower_keys(host_json).get("extensions") or {}
        queues = _lower_keys(_lower_keys(extensions).get("queues") or {})

        def integer(key: str, default: int, low: int, high: int) -> int:
            raw = queues.get(key.lower(), default)
            if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
                raise HostError(f"host.json extensions.queues.{key}: {raw!r} must be an "
                                  f"integer in [{low}, {high}]")
            return raw

        batch_size = integer("batchSize", 16, 1, 32)  # the host rejects batchSize > 32
        threshold = integer("newBatchThreshold", batch_size // 2, 0, 10_000)
        max_dequeue = integer("maxDequeueCount", 5, 1, 10_000)
        polling = parse_timespan(queues.get("maxpollinginterval", "00:01:00"),
                                 setting="extensions.queues.maxPollingInterval",
                                 numbers_are_ms=True)
        if polling < MIN_POLLING_INTERVAL_S:
            raise HostError("host.json extensions.queues.maxPollingInterval must be at least "
                              "00:00:00.100 (100 ms)")
        visibility = parse_timespan(queues.get("visibilitytimeout", "00:00:00"),
                                    setting="extensions.queues.visibilityTimeout")
        encoding = str(queues.get("messageencoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise HostError(f"host.json extensions.queues.messageEncoding: {encoding!r} must "
                              "be 'base64' or 'none'")
        return cls(batch_size=batch_size, new_batch_threshold=threshold,
                   max_polling_interval=polling, visibility_timeout=visibility,
                   max_dequeue_count=max_dequeue,
                   message_encoding="base64" if encoding == "base64" else "none")

    def describe(self) -> str:
        return (f"batchSize={self.batch_size} newBatchThreshold={self.new_batch_threshold} "
                f"maxPollingInterval={self.max_polling_interval:g}s "
                f"visibilityTimeout={self.visibility_timeout:g}s "
                f"maxDequeueCount={self.max_dequeue_count} messageEncoding={self.message_encoding}")


def _lower_keys(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k).lower(): v for k, v in value.items()}


def load_host_json(host_json: Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(host_json, Mapping):
        return dict(host_json)
    try:
        doc = json.loads(Path(host_json).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise HostError(f"{host_json} does not exist (the host needs a host.json)") from None
    except json.JSONDecodeError as exc:
        raise HostError(f"{host_json} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise HostError(f"{host_json}: expected a JSON object")
    return doc




def function_timeout(host_json: Mapping[str, Any]) -> float | None:
    """host.json ``functionTimeout`` in seconds; None means unbounded ("-1").

    Unset, Flex Consumption's default is 30 minutes (Functions docs, "host.json reference:
    functionTimeout" and "Flex Consumption plan: timeouts"); the host validates the TimeSpan
    (azure-functions-host ``src/WebJobs.Script/Config/ScriptHostOptionsSetup.cs`` ``Configure``).
    """
    raw = _lower_keys(host_json).get("functiontimeout")
    if raw is None:
        return 1800.0
    if str(raw).strip() == "-1":
        return None
    return parse_timespan(raw, setting="functionTimeout")


def worker_thread_count(settings: Mapping[str, str]) -> int:
    """Threads the worker runs sync functions on.

    ``PYTHON_THREADPOOL_THREAD_COUNT`` when a positive integer, else ``ThreadPoolExecutor``'s
    default ``min(32, cpu + 4)`` (azure_functions_runtime ``utils/threadpool.py``
    ``_get_max_workers`` / ``start_threadpool_executor``: an invalid value is logged and ignored).
    """
    raw = settings.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    return min(32, (os.cpu_count() or 1) + 4)


@dataclasses.dataclass(frozen=True)
class StorageConnection:
    """Where a binding's ``connection`` points: a connection string, or an identity-based URI.

    ``description`` is safe to log (no keys). Build clients with :meth:`queue_client`.
    """

    name: str
    connection_string: str | None = dataclasses.field(default=None, repr=False)
    queue_service_uri: str | None = None
    credential: str | None = None
    client_id: str | None = None

    @property
    def description(self) -> str:
        if self.connection_string:
            return mask_connection_string(self.connection_string)
        via = f"managed identity {self.client_id}" if self.client_id else (self.credential or "default credential")
        return f"{self.queue_service_uri} ({via})"

    def queue_client(self, queue_name: str) -> QueueClient:
        """A raw-text client (no SDK encode policy: the host applies ``messageEncoding``).

        Identity-based URIs on loopback are Azurite, which accepts only its account key, so
        they are mapped to the development account (the local equivalent of the identity);
        any other URI gets ``ManagedIdentityCredential(client_id)`` when ``credential`` is
        ``managedidentity``, else ``DefaultAzureCredential``, as ``ClientFactory`` does.
        """
        retry = ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3, random_jitter_range=1)
        if self.connection_string:
            return QueueClient.from_connection_string(self.connection_string, queue_name, retry_policy=retry)
        assert self.queue_service_uri is not None
        if (urlparse(self.queue_service_uri).hostname or "") in _LOOPBACK:
            credential: Any = {"account_name": DEV_ACCOUNT, "account_key": _DEV_KEY}
        else:  # pragma: no cover - needs Azure
            from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

            credential = (ManagedIdentityCredential(client_id=self.client_id)
                          if (self.credential or "").lower() == "managedidentity" else DefaultAzureCredential())
        return QueueClient(self.queue_service_uri, queue_name, credential=credential, retry_policy=retry)


def resolve_connection(name: str, settings: Mapping[str, str], function_name: str) -> StorageConnection:
    """The storage connection a binding's ``connection`` names (see the module docstring).

    ``X`` is looked up as ``X`` then ``AzureWebJobsX``; ``UseDevelopmentStorage=true`` is the
    emulator's default endpoint. Raises :class:`HostError` naming the setting when absent.
    """
    for key in (name, f"AzureWebJobs{name}"):
        value = settings.get(key, "").strip()
        if value:
            if value.replace(" ", "").lower().rstrip(";") == "usedevelopmentstorage=true":
                return StorageConnection(key, connection_string=DEVELOPMENT_STORAGE_CONNECTION)
            if "=" not in value:
                raise HostError(f"{function_name}: setting '{key}' is not a storage connection string")
            return StorageConnection(key, connection_string=value)
        section = {k[len(key) + 2:].lower(): v for k, v in settings.items() if k.startswith(f"{key}__")}
        if section:
            uri = section.get("queueserviceuri") or section.get("serviceuri")
            if not uri and section.get("accountname"):
                uri = f"https://{section['accountname']}.queue.core.windows.net"
            if not uri:
                raise HostError(f"{function_name}: identity-based connection '{key}' needs "
                                f"'{key}__queueServiceUri' (or '{key}__serviceUri')")
            return StorageConnection(key, queue_service_uri=uri.rstrip("/"),
                                     credential=section.get("credential"), client_id=section.get("clientid"))
    raise HostError(f"{function_name}: Storage account connection string '{name}' does not "
                    "exist. Make sure that it is a defined App Setting.")


def normalize_queue_name(raw: str, function_name: str) -> str:
    """Lower-case and validate, as the Storage extension does before it touches the queue."""
    name = raw.lower()
    if not 3 <= len(name) <= 63 or not re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]", name):
        raise HostError(f"{function_name}: invalid queue name '{raw}': 3-63 lowercase letters, digits "
                        "and single hyphens, starting and ending with a letter or digit")
    return name
