"""A local stand-in for the Azure Functions host: run the app's own functions against Azurite.

Azure Functions Core Tools (``func start``) cannot be installed on these machines, so this
module is the closest real thing. It indexes the app exactly as the Python worker does
(``app.get_functions()`` -> function.json bindings -> ``get_user_function()``), calls the
user functions with real ``azure.functions`` objects, and reproduces the host's documented
Storage-queue and timer semantics against a real queue service (Azurite, or any storage
account reachable through a connection string):

* queue trigger (Storage extension 5.x, ``host.json`` ``extensions.queues``): batches of
  ``batchSize`` received with a 10-minute lease that is renewed at half-life while the
  function runs, a new batch once in-flight work drops to ``newBatchThreshold``, exponential
  back-off (without the host's random jitter) from 100 ms to ``maxPollingInterval`` on empty polls (reset when a
  message is found, cut short when this runner itself writes to the queue), output bindings
  flushed only after the function returned, then the trigger message deleted; on failure the
  message is released with ``visibilityTimeout`` or, at ``maxDequeueCount``, moved to
  ``<queue>-poison``;
* timer trigger: NCRONTAB (six fields, seconds first, UTC) or TimeSpan schedules, singleton
  per function, no retry, ``runOnStartup``, ``past_due``;
* ``%Setting%`` resolution, connection settings, app settings exported as environment
  variables (like Core Tools does with ``local.settings.json`` ``Values``).

It is a test and demo tool, not a host: the :class:`LocalRunner` docstring lists what it does
not reproduce. CLI: ``python -m devtools.runner`` (like ``func start``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections.abc
import contextlib
import dataclasses
import importlib
import importlib.util
import inspect
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, ModuleType, TracebackType
from typing import Any, Literal, Protocol

import azure.functions as func
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.functions import _abc as func_abc
from azure.functions.queue import QueueMessage as TriggerQueueMessage
from azure.functions.timer import TimerRequest
from azure.storage.queue import ExponentialRetry, QueueClient, QueueMessage
from croniter import croniter

__all__ = [
    "FunctionLoadError",
    "FunctionStats",
    "IndexedFunction",
    "LocalRunner",
    "Outcome",
    "QueueOutputBinding",
    "QueueTriggerBinding",
    "QueuesOptions",
    "RunnerError",
    "TimerTriggerBinding",
    "exported_settings",
    "get_functions_again",
    "load_app",
    "load_local_settings",
    "main",
    "mask_connection_string",
    "parse_schedule",
    "parse_timespan",
    "resolve_setting_tokens",
]

log = logging.getLogger("devtools.runner")

Outcome = Literal["succeeded", "failed", "poisoned"]
InvocationCallback = Callable[[str, Outcome, float], None]
Clock = Callable[[], datetime]

POISON_SUFFIX = "-poison"
# QueuePollingIntervals.Minimum in the Storage extension.
MIN_POLLING_INTERVAL_S = 0.1
# QueueListener receives with a fixed 10-minute visibility timeout and renews it at half-life.
DEFAULT_MESSAGE_LEASE_S = 600
DEFAULT_STORAGE_SETTING = "AzureWebJobsStorage"
# What Core Tools turns "UseDevelopmentStorage=true" into: the emulator's default endpoint.
_DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEVELOPMENT_STORAGE_CONNECTION = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    f"AccountKey={_DEV_KEY};QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)

_TOKEN = re.compile(r"%([^%]+)%")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")
_SECRET = re.compile(r"(AccountKey|SharedAccessSignature|SharedAccessKey)=[^;]*", re.IGNORECASE)


class RunnerError(Exception):
    """The app, its settings or host.json cannot be run (the host would refuse them too)."""


class FunctionLoadError(RunnerError):
    """A function the Python worker would refuse to load (same checks, similar wording)."""

    def __init__(self, function_name: str, message: str) -> None:
        super().__init__(f"cannot load the {function_name} function: {message}")
        self.function_name = function_name


# ---------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------


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
        raise RunnerError(f"{path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise RunnerError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RunnerError(f"{path}: expected a JSON object with a 'Values' object")
    if doc.get("IsEncrypted") is True:
        raise RunnerError(f"{path} is encrypted (IsEncrypted: true); decrypt it with "
                          "`func settings decrypt` first")
    values = doc.get("Values", {})
    if not isinstance(values, dict):
        raise RunnerError(f"{path}: 'Values' must be an object of strings")
    out: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, str):
            out[str(key)] = value
        elif isinstance(value, (bool, int, float)):
            out[str(key)] = json.dumps(value)
        elif value is None:
            continue
        else:
            raise RunnerError(f"{path}: setting {key!r} must be a string, not {type(value).__name__}")
    return out


def resolve_setting_tokens(value: str, settings: Mapping[str, str], *, function_name: str) -> str:
    """Replace every ``%Name%`` in ``value`` with ``settings[Name]``, as the host does.

    A missing setting fails indexing with the host's wording ("... does not resolve to a
    value"), naming the setting, so a typo in local.settings.json is caught at start-up.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in settings:
            raise RunnerError(
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


# ---------------------------------------------------------------------------------------
# host.json
# ---------------------------------------------------------------------------------------


def parse_timespan(value: object, *, setting: str, numbers_are_ms: bool = False) -> float:
    """Seconds in a host.json TimeSpan (``[d.]hh:mm[:ss[.fffffff]]``).

    ``numbers_are_ms`` accepts the Functions 1.x form (a JSON number of milliseconds), which
    the docs still show for ``maxPollingInterval``.
    """
    if numbers_are_ms and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 1000.0
    if isinstance(value, str):
        match = _TIMESPAN.match(value.strip())
        if match:
            days, hours, minutes, seconds, fraction = match.groups()
            if int(hours) < 24 and int(minutes) < 60 and int(seconds or 0) < 60:
                return (int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60
                        + int(seconds or 0) + float(f"0.{fraction or 0}"))
    raise RunnerError(f"host.json {setting}: {value!r} is not a TimeSpan like \"00:00:30\"")


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
                raise RunnerError(f"host.json extensions.queues.{key}: {raw!r} must be an "
                                  f"integer in [{low}, {high}]")
            return raw

        batch_size = integer("batchSize", 16, 1, 32)  # the host rejects batchSize > 32
        threshold = integer("newBatchThreshold", batch_size // 2, 0, 10_000)
        max_dequeue = integer("maxDequeueCount", 5, 1, 10_000)
        polling = parse_timespan(queues.get("maxpollinginterval", "00:01:00"),
                                 setting="extensions.queues.maxPollingInterval",
                                 numbers_are_ms=True)
        if polling < MIN_POLLING_INTERVAL_S:
            raise RunnerError("host.json extensions.queues.maxPollingInterval must be at least "
                              "00:00:00.100 (100 ms)")
        visibility = parse_timespan(queues.get("visibilitytimeout", "00:00:00"),
                                    setting="extensions.queues.visibilityTimeout")
        encoding = str(queues.get("messageencoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise RunnerError(f"host.json extensions.queues.messageEncoding: {encoding!r} must "
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


def _load_host_json(host_json: Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(host_json, Mapping):
        return dict(host_json)
    try:
        doc = json.loads(Path(host_json).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise RunnerError(f"{host_json} does not exist (the host needs a host.json)") from None
    except json.JSONDecodeError as exc:
        raise RunnerError(f"{host_json} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RunnerError(f"{host_json}: expected a JSON object")
    return doc


# ---------------------------------------------------------------------------------------
# Timer schedules
# ---------------------------------------------------------------------------------------


class Schedule(Protocol):
    """When a timer fires next; all datetimes are timezone-aware UTC."""

    @property
    def text(self) -> str: ...

    def next_after(self, moment: datetime) -> datetime: ...


@dataclasses.dataclass(frozen=True)
class CronSchedule:
    """An NCRONTAB expression: six fields, seconds first, evaluated in UTC.

    croniter reads a six-field expression with seconds *last* unless told
    ``second_at_beginning=True`` (checked in croniter 7.0's ``_expand``: it moves the first
    field to its internal seconds slot). Five-field expressions are accepted too, as the
    host's CronSchedule does (no seconds field).
    """

    text: str

    def __post_init__(self) -> None:
        fields = self.text.split()
        if len(fields) not in (5, 6) or not croniter.is_valid(
                self.text, second_at_beginning=len(fields) == 6):
            raise RunnerError(f"'{self.text}' is not a valid NCRONTAB expression (six fields, "
                              "seconds first, e.g. '0 */5 * * * *') or TimeSpan ('hh:mm:ss')")

    def next_after(self, moment: datetime) -> datetime:
        seconds_first = len(self.text.split()) == 6
        nxt: datetime = croniter(self.text, moment.astimezone(UTC),
                                 second_at_beginning=seconds_first).get_next(datetime)
        return nxt


@dataclasses.dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule ("hh:mm:ss"): the next run is one interval after the last one."""

    text: str
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        return moment + self.interval


def parse_schedule(text: str) -> Schedule:
    """A TimeSpan ("00:05:00") or NCRONTAB ("0 */5 * * * *") schedule, like the host."""
    if _TIMESPAN.match(text.strip()):
        seconds = parse_timespan(text, setting="schedule")
        if seconds <= 0:
            raise RunnerError(f"timer schedule {text!r} must be a positive interval")
        return IntervalSchedule(text=text, interval=timedelta(seconds=seconds))
    return CronSchedule(text=text)


# ---------------------------------------------------------------------------------------
# Indexing (what the Python worker does with get_functions())
# ---------------------------------------------------------------------------------------

# Element types a queue output accepts: QueueMessageOutConverter takes str, bytes and
# QueueMessage, alone or in an iterable.
_OUTPUT_ITEM_TYPES: tuple[type, ...] = (str, bytes, func_abc.QueueMessage)
_ITERABLE_ORIGINS: tuple[Any, ...] = (list, tuple, collections.abc.Iterable,
                                      collections.abc.Sequence, collections.abc.Collection)


@dataclasses.dataclass(frozen=True)
class QueueTriggerBinding:
    param: str
    queue_name: str
    connection: str  # the setting name, as in function.json
    connection_string: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class QueueOutputBinding:
    param: str
    queue_name: str
    connection: str
    connection_string: str = dataclasses.field(repr=False)
    item_type: type = str
    many: bool = False  # func.Out[list[T]]: set() takes a list, one message per item

    @property
    def annotation(self) -> str:
        name = "func.QueueMessage" if self.item_type is func_abc.QueueMessage else self.item_type.__name__
        return f"func.Out[list[{name}]]" if self.many else f"func.Out[{name}]"

    def payloads(self, value: Any) -> list[bytes]:
        """Check ``value`` against the annotation and turn it into message bodies.

        The worker only accepts what the annotation promises; a list for ``func.Out[str]``
        or a dict anywhere is a bug the real worker would also fail on (at encode time).
        """
        if value is None:
            return []  # an Out that was never set sends nothing
        if self.many:
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, collections.abc.Iterable):
                raise TypeError(f"output binding '{self.param}' is declared as {self.annotation}: "
                                f"set() takes a list, not {type(value).__name__}")
            items = list(value)
        else:
            items = [value]
        out: list[bytes] = []
        for item in items:
            if not isinstance(item, self.item_type):
                raise TypeError(f"output binding '{self.param}' is declared as {self.annotation}: "
                                f"cannot send a {type(item).__name__}")
            if isinstance(item, str):
                out.append(item.encode("utf-8"))
            elif isinstance(item, bytes):
                out.append(item)
            elif isinstance(item, func_abc.QueueMessage):
                body = item.get_body()
                out.append(body.encode("utf-8") if isinstance(body, str) else body)
        return out


@dataclasses.dataclass(frozen=True)
class TimerTriggerBinding:
    param: str
    schedule: Schedule
    run_on_startup: bool = False
    use_monitor: bool = True


@dataclasses.dataclass(frozen=True)
class IndexedFunction:
    """One function as the runner will drive it (bindings already resolved)."""

    name: str
    user_function: Callable[..., Any] = dataclasses.field(repr=False)
    trigger: QueueTriggerBinding | TimerTriggerBinding
    outputs: tuple[QueueOutputBinding, ...] = ()
    pass_context: bool = False

    def describe(self) -> list[str]:
        """``func start``-style lines: the trigger, then one line per output."""
        if isinstance(self.trigger, QueueTriggerBinding):
            head = f"{self.name}: queueTrigger {self.trigger.queue_name} ({self.trigger.connection})"
        else:
            extra = ", runOnStartup" if self.trigger.run_on_startup else ""
            head = f"{self.name}: timerTrigger {self.trigger.schedule.text!r} (UTC{extra})"
        lines = [head]
        lines += [f"    -> queue {o.queue_name} ({o.connection}) as {o.param}: {o.annotation}"
                  for o in self.outputs]
        return lines


def _resolve_connection(name: str, settings: Mapping[str, str], function_name: str) -> str:
    """The connection string a binding's ``connection`` setting names.

    Like the host, ``X`` is looked up as ``X`` then ``AzureWebJobsX``.
    ``UseDevelopmentStorage=true`` means the emulator on its default port (10001).
    """
    for key in (name, f"AzureWebJobs{name}"):
        value = settings.get(key, "").strip()
        if value:
            if value.replace(" ", "").lower().rstrip(";") == "usedevelopmentstorage=true":
                return DEVELOPMENT_STORAGE_CONNECTION
            if "=" not in value:
                raise RunnerError(f"{function_name}: setting '{key}' is not a storage connection "
                                  "string")
            return value
    if any(k.startswith(f"{name}__") for k in settings):
        raise RunnerError(
            f"{function_name}: connection '{name}' is identity-based ({name}__queueServiceUri / "
            f"__credential); the local runner needs a connection string: set '{name}' to "
            "'UseDevelopmentStorage=true' or an Azurite connection string in local.settings.json")
    raise RunnerError(f"{function_name}: Storage account connection string '{name}' does not "
                      "exist. Make sure that it is a defined App Setting.")


def _normalize_queue_name(raw: str, function_name: str) -> str:
    """Lower-case and validate, as the Storage extension does before it touches the queue."""
    name = raw.lower()
    if not 3 <= len(name) <= 63 or not _QUEUE_NAME.match(name):
        raise RunnerError(
            f"{function_name}: invalid queue name '{raw}': 3-63 lowercase letters, digits and "
            "single hyphens, starting and ending with a letter or digit")
    return name


def _output_shape(function_name: str, param: str, annotation: Any) -> tuple[type, bool]:
    """(item type, many) for a ``func.Out[...]`` annotation, or the worker's load error."""
    if typing.get_origin(annotation) is not func_abc.Out:
        raise FunctionLoadError(
            function_name, f'binding {param} is declared to have the "out" direction, but its '
            "annotation in Python is not a subclass of azure.functions.Out")
    (inner,) = typing.get_args(annotation) or (None,)
    origin = typing.get_origin(inner)
    if origin in _ITERABLE_ORIGINS:
        args = typing.get_args(inner)
        element = args[0] if args else None
        if isinstance(element, type) and issubclass(element, _OUTPUT_ITEM_TYPES):
            return (func_abc.QueueMessage if issubclass(element, func_abc.QueueMessage)
                    else element, True)
    elif isinstance(inner, type) and issubclass(inner, _OUTPUT_ITEM_TYPES):
        return (func_abc.QueueMessage if issubclass(inner, func_abc.QueueMessage) else inner, False)
    raise FunctionLoadError(
        function_name, f'type of {param} binding in function.json "queue" does not match its '
        f"Python annotation {annotation!r}: use func.Out[str] or func.Out[list[str]]")


def _index_function(fn: Any, settings: Mapping[str, str]) -> IndexedFunction | str:
    """An :class:`IndexedFunction`, or the reason it is not run locally."""
    name: str = fn.get_function_name()
    user_function: Callable[..., Any] = fn.get_user_function()
    bindings: list[dict[str, Any]] = json.loads(fn.get_function_json()).get("bindings", [])
    try:
        hints = typing.get_type_hints(user_function)
    except Exception as exc:  # NameError for unresolvable string annotations, etc.
        raise FunctionLoadError(name, f"cannot resolve its type annotations: {exc}") from None
    params = inspect.signature(user_function).parameters

    def resolve(value: Any) -> Any:
        return resolve_setting_tokens(value, settings, function_name=name) if isinstance(value, str) else value

    resolved = [{k: (v if k in ("name", "type", "direction") else resolve(v)) for k, v in b.items()}
                for b in bindings]
    triggers = [b for b in resolved if str(b.get("type", "")).endswith("Trigger")]
    if len(triggers) != 1:
        raise FunctionLoadError(name, f"expected exactly one trigger binding, found {len(triggers)}")
    trigger_json = triggers[0]
    binding_names = {str(b["name"]) for b in resolved}
    declared = {p for p in params if p != "context"}
    if declared - binding_names:
        raise FunctionLoadError(
            name, "the following parameters are declared in Python but not in the function "
            f"definition (function.json or function decorators): {sorted(declared - binding_names)!r}")
    if binding_names - set(params) - {"$return"}:
        raise FunctionLoadError(
            name, "the following parameters are declared in the function definition but not in "
            f"Python: {sorted(binding_names - set(params))!r}")

    ttype = trigger_json["type"]
    trigger: QueueTriggerBinding | TimerTriggerBinding
    if ttype == "queueTrigger":
        param = str(trigger_json["name"])
        anno = hints.get(param)
        if anno is not None and not (isinstance(anno, type) and issubclass(anno, func_abc.QueueMessage)):
            raise FunctionLoadError(name, f'type of {param} binding in function.json "queueTrigger" '
                                    f"does not match its Python annotation {anno!r}: use func.QueueMessage")
        connection = str(trigger_json.get("connection") or DEFAULT_STORAGE_SETTING)
        trigger = QueueTriggerBinding(
            param=param,
            queue_name=_normalize_queue_name(str(trigger_json["queueName"]), name),
            connection=connection,
            connection_string=_resolve_connection(connection, settings, name))
    elif ttype == "timerTrigger":
        param = str(trigger_json["name"])
        anno = hints.get(param)
        if anno is not None and not (isinstance(anno, type) and issubclass(anno, func_abc.TimerRequest)):
            raise FunctionLoadError(name, f'type of {param} binding in function.json "timerTrigger" '
                                    f"does not match its Python annotation {anno!r}: use func.TimerRequest")
        try:
            schedule = parse_schedule(str(trigger_json["schedule"]))
        except RunnerError as exc:
            raise RunnerError(f"Error indexing method 'Functions.{name}': {exc}") from None
        trigger = TimerTriggerBinding(param=param, schedule=schedule,
                                      run_on_startup=bool(trigger_json.get("runOnStartup", False)),
                                      use_monitor=bool(trigger_json.get("useMonitor", True)))
    else:
        return f"{ttype} functions are not run by the local runner"

    outputs: list[QueueOutputBinding] = []
    for b in resolved:
        if b is trigger_json:
            continue
        direction = str(b.get("direction", "")).lower()
        if b.get("type") != "queue" or direction != "out":
            return f"binding '{b.get('name')}' ({b.get('type')}, {direction}) is not supported locally"
        param = str(b["name"])
        if param == "$return":
            return "$return output bindings are not supported locally"
        item_type, many = _output_shape(name, param, hints.get(param))
        connection = str(b.get("connection") or DEFAULT_STORAGE_SETTING)
        outputs.append(QueueOutputBinding(
            param=param, queue_name=_normalize_queue_name(str(b["queueName"]), name),
            connection=connection, connection_string=_resolve_connection(connection, settings, name),
            item_type=item_type, many=many))
    return IndexedFunction(name=name, user_function=user_function, trigger=trigger,
                           outputs=tuple(outputs), pass_context="context" in params)


def get_functions_again(app: func.FunctionApp) -> list[Any]:
    """``app.get_functions()``, callable more than once per process.

    azure-functions 1.26's duplicate-name check remembers earlier get_functions() calls in
    app.functions_bindings, so a second call on the same app raises "does not have a unique
    function name". The worker indexes once per process; tests build many runners. Index
    with a fresh check (duplicates are still caught) and put the attribute back, so
    neither we nor other code calling get_functions() later see a side effect.
    """
    remembered = app.functions_bindings
    app.functions_bindings = None
    try:
        return list(app.get_functions())
    finally:
        app.functions_bindings = remembered


def index_app(app: func.FunctionApp, settings: Mapping[str, str]) -> tuple[list[IndexedFunction], dict[str, str]]:
    """(functions to run, {skipped function: why}) for ``app``, like the worker's indexing.

    Functions disabled with the ``AzureWebJobs.<name>.Disabled`` setting are skipped, as
    the host does.
    """
    functions: list[IndexedFunction] = []
    skipped: dict[str, str] = {}
    for fn in get_functions_again(app):
        name = fn.get_function_name() or ""
        if settings.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in ("true", "1"):
            skipped[name] = f"disabled by the AzureWebJobs.{name}.Disabled setting"
            continue
        result = _index_function(fn, settings)
        if isinstance(result, str):
            skipped[name] = result
        else:
            functions.append(result)
    return functions, skipped


# ---------------------------------------------------------------------------------------
# azure.functions objects handed to user code
# ---------------------------------------------------------------------------------------


class _QueueOut(func.Out[Any]):
    """The ``func.Out`` passed for a queue output binding; checked against its annotation."""

    def __init__(self, binding: QueueOutputBinding) -> None:
        self._binding = binding
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._binding.payloads(val)  # fail inside the function, where the bug is
        self._value = val

    def get(self) -> Any:
        return self._value


class _NoException(func_abc.RpcException):
    @property
    def source(self) -> str:
        return ""

    @property
    def stack_trace(self) -> str:
        return ""

    @property
    def message(self) -> str:
        return ""


class _TraceContext(func_abc.TraceContext):
    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> func_abc.RpcException:
        return _NoException()


class _Context(func_abc.Context):
    """The ``context`` argument the worker passes to functions that declare one."""

    _local = threading.local

    def __init__(self, invocation_id: str, function_name: str, directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._directory = directory

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._directory

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return _TraceContext()

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return _RetryContext()


# ---------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FunctionStats:
    """Counters for one function. ``poisoned`` counts messages moved to ``<queue>-poison``."""

    invocations: int = 0
    successes: int = 0
    failures: int = 0
    poisoned: int = 0


class _Lease:
    """A received message while we own it: the pop receipt changes with every renewal."""

    def __init__(self, client: QueueClient, message: QueueMessage) -> None:
        self.client = client
        self.message = message
        self.id: str = message.id
        self.pop_receipt: str = message.pop_receipt or ""
        self.lock = threading.Lock()
        self.renewed_at = time.monotonic()
        self.finished = False


class _QueueListener:
    """Polls one queue for one function (the host's QueueListener)."""

    def __init__(self, runner: LocalRunner, fn: IndexedFunction, trigger: QueueTriggerBinding,
                 max_workers: int) -> None:
        self.runner = runner
        self.fn = fn
        self.trigger = trigger
        self.wake = threading.Event()
        self.cond = threading.Condition()
        self.in_flight = 0
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"fn-{fn.name}")
        self.thread = threading.Thread(target=self.run, name=f"poll-{fn.name}", daemon=True)

    def run(self) -> None:
        runner = self.runner
        opts = runner.queues_options
        delay: float | None = None
        found_since_delay = False
        while not runner._stopping.is_set():
            # Back-pressure: the host fetches the next batch only when in-flight work has
            # dropped to newBatchThreshold.
            with self.cond:
                while self.in_flight > opts.new_batch_threshold and not runner._stopping.is_set():
                    self.cond.wait(0.5)
            if runner._stopping.is_set():
                break
            batch = self._receive()
            if batch:
                for message in batch:
                    self._submit(message)
                found_since_delay = True
                continue
            # Empty poll: 100 ms after a message was seen, then doubling up to the maximum.
            if found_since_delay or delay is None:
                delay, found_since_delay = MIN_POLLING_INTERVAL_S, False
            else:
                delay = min(delay * 2, opts.max_polling_interval)
            self.wake.wait(delay)
            self.wake.clear()

    def _receive(self) -> list[QueueMessage]:
        opts = self.runner.queues_options
        client = self.runner._client(self.trigger.connection_string, self.trigger.queue_name)
        try:
            return list(client.receive_messages(messages_per_page=opts.batch_size,
                                                 max_messages=opts.batch_size,
                                                 visibility_timeout=self.runner._lease_seconds))
        except ResourceNotFoundError:
            log.warning("Queue '%s' does not exist (deleted?); polling it as empty",
                        self.trigger.queue_name)
        except Exception as exc:  # connection refused while Azurite restarts, 5xx, ...
            log.warning("Polling queue '%s' for %s failed: %s", self.trigger.queue_name,
                        self.fn.name, exc)
        return []

    def _submit(self, message: QueueMessage) -> None:
        with self.cond:
            self.in_flight += 1
        try:
            future = self.pool.submit(self.runner._handle_message, self.fn, self.trigger, message)
        except RuntimeError:  # pool shut down between the receive and now
            self._done(None, message)
            return
        future.add_done_callback(lambda f: self._done(f, message))

    def _done(self, future: Future[None] | None, message: QueueMessage) -> None:
        if future is None or future.cancelled():
            # Never started (stop() timed out): give the message back now rather than after
            # the 10-minute lease.
            self.runner._release_unstarted(self.trigger, message)
        with self.cond:
            self.in_flight -= 1
            self.cond.notify_all()
        self.runner._notify_idle()


class LocalRunner:
    """Drive a ``func.FunctionApp``'s queue and timer functions with the host's semantics.

    ``settings`` are the app settings (``local.settings.json`` ``Values``): ``%Name%``
    tokens in bindings and connection names are resolved from them at construction, and
    they are exported to ``os.environ`` while the runner is started (see
    :func:`exported_settings`). ``clock`` (UTC) drives timer schedules; tests inject one and
    move it forward. ``on_invocation(function, outcome, seconds)`` is called after every
    invocation ("succeeded"/"failed") and for every message moved to the poison queue
    ("poisoned", 0.0).

    Not reproduced (a local runner cannot, or need not): functionTimeout (Python threads
    cannot be cancelled), the host's randomised back-off jitter, the blob lease that makes
    timers singletons across instances and useMonitor's persisted schedule status (missed
    runs while stopped are not replayed), scale-out, retry policies, Application Insights.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        settings: Mapping[str, str],
        host_json: Path | Mapping[str, Any],
        clock: Clock | None = None,
        on_invocation: InvocationCallback | None = None,
        max_workers: int | None = None,
        message_lease_seconds: int = DEFAULT_MESSAGE_LEASE_S,
        function_directory: Path | None = None,
    ) -> None:
        self.settings: dict[str, str] = dict(settings)
        self.host_json = _load_host_json(host_json)
        self.queues_options = QueuesOptions.from_host_json(self.host_json)
        self.functions, self.skipped = index_app(app, self.settings)
        self.on_invocation = on_invocation
        self._clock = clock
        self._timer_tick = 0.02 if clock is not None else 0.5
        self._max_workers = max_workers or self.queues_options.batch_size
        if message_lease_seconds < 2:
            raise RunnerError("message_lease_seconds must be at least 2")
        self._lease_seconds = message_lease_seconds
        self._directory = str(function_directory or Path.cwd())

        self._lock = threading.Lock()
        self._stats: dict[str, FunctionStats] = {f.name: FunctionStats() for f in self.functions}
        self._active = 0  # invocations running right now (queue and timer)
        self._timers_running = 0
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._started = False
        self._exports = contextlib.ExitStack()
        self._local = threading.local()
        self._leases: set[_Lease] = set()
        self._listeners: list[_QueueListener] = []
        self._threads: list[threading.Thread] = []
        self._singletons = {f.name: threading.Lock() for f in self.functions
                            if isinstance(f.trigger, TimerTriggerBinding)}
        self._timer_last: dict[str, datetime] = {}

    # -- public API ----------------------------------------------------------------------

    def describe(self) -> list[str]:
        """The indexed functions, one ``func start``-style line per binding."""
        lines = [line for f in self.functions for line in f.describe()]
        lines += [f"{name}: not run locally ({why})" for name, why in self.skipped.items()]
        return lines

    @property
    def stats(self) -> dict[str, FunctionStats]:
        """A snapshot of the per-function counters."""
        with self._lock:
            return dict(self._stats)

    @property
    def started(self) -> bool:
        return self._started

    @property
    def in_flight(self) -> int:
        """Messages received and not yet settled, plus running invocations of timers."""
        with self._lock:
            return self._timers_running + sum(listener.in_flight for listener in self._listeners)

    def start(self) -> LocalRunner:
        """Create queues, export settings, start pollers and timers; returns ``self``."""
        if self._started:
            raise RuntimeError("the runner is already started")
        self._stopping.clear()
        self._exports.enter_context(exported_settings(self.settings))
        try:
            self._create_queues()
        except BaseException:
            self._exports.close()
            raise
        self._started = True
        for fn in self.functions:
            if isinstance(fn.trigger, QueueTriggerBinding):
                listener = _QueueListener(self, fn, fn.trigger, self._max_workers)
                self._listeners.append(listener)
                listener.thread.start()
            else:
                thread = threading.Thread(target=self._timer_loop, args=(fn, fn.trigger),
                                          name=f"timer-{fn.name}", daemon=True)
                self._threads.append(thread)
                thread.start()
        renewer = threading.Thread(target=self._renew_leases, name="lease-renewer", daemon=True)
        self._threads.append(renewer)
        renewer.start()
        log.info("Local runner started: %d function(s); %s", len(self.functions),
                 self.queues_options.describe())
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop: no new polls or timer runs, wait for in-flight invocations.

        Messages received but not started within ``timeout`` are released at once; an
        invocation still running after ``timeout`` is left to finish on its own (threads
        cannot be cancelled) and a warning says so.
        """
        if not self._started:
            return
        deadline = time.monotonic() + timeout
        self._stopping.set()
        for listener in self._listeners:
            listener.wake.set()
        for listener in self._listeners:
            listener.thread.join(max(0.0, deadline - time.monotonic()))
        for thread in self._threads:
            if thread.name.startswith("timer-"):
                thread.join(max(0.0, deadline - time.monotonic()))
        with self._idle:
            while self._busy_locked() and time.monotonic() < deadline:
                self._idle.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            busy = self._busy_locked()
        for listener in self._listeners:
            listener.pool.shutdown(wait=False, cancel_futures=True)
        if busy:
            log.warning("Stopped with invocations still running after %.1fs", timeout)
        for thread in self._threads:
            thread.join(0.1 if busy else max(0.0, deadline - time.monotonic()))
        self._listeners.clear()
        self._threads.clear()
        self._started = False
        self._exports.close()
        log.info("Local runner stopped")

    def __enter__(self) -> LocalRunner:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def run_until_idle(self, *, settle_seconds: float = 0.5, timeout: float = 60.0) -> None:
        """Block until every trigger queue is empty and nothing runs, for ``settle_seconds``.

        "Empty" uses the queue's approximate message count, which includes leased and
        released-but-invisible messages, so a message waiting out ``visibilityTimeout`` keeps
        the runner busy. Raises ``TimeoutError`` if that does not happen within ``timeout``.
        """
        if not self._started:
            raise RuntimeError("start() the runner before run_until_idle()")
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while True:
            now = time.monotonic()
            if self._is_idle():
                idle_since = idle_since if idle_since is not None else now
                if now - idle_since >= settle_seconds:
                    return
            else:
                idle_since = None
            if now >= deadline:
                raise TimeoutError(f"not idle after {timeout:g}s: {self._busy_report()}")
            time.sleep(0.05)

    def fire_timer(self, function_name: str) -> Outcome:
        """Run one invocation of a timer function now, synchronously (waits for a running one).

        Works whether or not the runner is started; settings are exported for the call.
        """
        fn = next((f for f in self.functions if f.name == function_name), None)
        if fn is None or not isinstance(fn.trigger, TimerTriggerBinding):
            timers = sorted(self._singletons)
            raise RunnerError(f"'{function_name}' is not a timer function of this app "
                              f"(timer functions: {timers})")
        with contextlib.ExitStack() as stack:
            if not self._started:
                stack.enter_context(exported_settings(self.settings))
            return self._invoke_timer(fn, fn.trigger, scheduled=self._now(), past_due=False,
                                      reason="This function was programmatically called via the host APIs.")

    # -- storage plumbing ----------------------------------------------------------------

    def _client(self, connection_string: str, queue_name: str) -> QueueClient:
        """A per-thread client: the SDK's requests session is not meant to be shared."""
        cache: dict[tuple[str, str], QueueClient] | None = getattr(self._local, "clients", None)
        if cache is None:
            cache = self._local.clients = {}
        key = (connection_string, queue_name)
        client = cache.get(key)
        if client is None:
            # Raw text in and out (no SDK encode policy): the runner applies
            # messageEncoding itself so that a bad message is seen as what it is.
            client = QueueClient.from_connection_string(
                connection_string, queue_name,
                retry_policy=ExponentialRetry(initial_backoff=1, increment_base=2,
                                              retry_total=3, random_jitter_range=1))
            cache[key] = client
        return client

    def _create_queues(self) -> None:
        # The real host creates the poison queue and output queues when it first writes to
        # them (AddMessageAndCreateIfNotExistsAsync); it never creates a trigger queue (a
        # missing one is polled as empty). Creating them all up front is a local
        # convenience, so a fresh Azurite needs no set-up before the demo sends messages.
        wanted: set[tuple[str, str]] = set()
        for fn in self.functions:
            if isinstance(fn.trigger, QueueTriggerBinding):
                t = fn.trigger
                wanted |= {(t.connection_string, t.queue_name),
                           (t.connection_string, t.queue_name + POISON_SUFFIX)}
            wanted |= {(o.connection_string, o.queue_name) for o in fn.outputs}
        for conn, queue in sorted(wanted):
            try:
                self._client(conn, queue).create_queue()
                log.info("Created queue '%s'", queue)
            except ResourceExistsError:
                pass
            except Exception as exc:
                endpoint = mask_connection_string(conn)
                raise RunnerError(f"cannot reach the queue service to create '{queue}' "
                                  f"(connection {endpoint}): {exc}") from exc

    def _send(self, connection_string: str, queue_name: str, content: str) -> None:
        client = self._client(connection_string, queue_name)
        try:
            client.send_message(content)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            client.send_message(content)
        # The host's SharedQueueWatcher: a listener on a queue this host just wrote to stops
        # backing off and polls now.
        for listener in self._listeners:
            t = listener.trigger
            if t.queue_name == queue_name and t.connection_string == connection_string:
                listener.wake.set()

    def _encode(self, payload: bytes) -> str:
        if self.queues_options.message_encoding == "base64":
            return base64.b64encode(payload).decode("ascii")
        return payload.decode("utf-8")  # "none": the message text is the payload

    def _decode(self, content: str) -> bytes:
        if self.queues_options.message_encoding == "base64":
            return base64.b64decode("".join(content.split()), validate=True)
        return content.encode("utf-8")

    def _settle(self, lease: _Lease, *, delete: bool, visibility: float = 0.0) -> None:
        """Delete or release a message, tolerating what the host tolerates."""
        with lease.lock:
            lease.finished = True
            try:
                if delete:
                    lease.client.delete_message(lease.id, lease.pop_receipt)
                else:
                    lease.client.update_message(lease.id, lease.pop_receipt,
                                                visibility_timeout=math.ceil(visibility))
            except ResourceNotFoundError:
                log.debug("Message %s or its queue is gone; nothing to settle", lease.id)
            except HttpResponseError as exc:
                if getattr(exc, "error_code", None) != "PopReceiptMismatch":
                    raise
                log.debug("Message %s: pop receipt did not match (someone else owns it)", lease.id)

    def _release_unstarted(self, trigger: QueueTriggerBinding, message: QueueMessage) -> None:
        try:
            self._client(trigger.connection_string, trigger.queue_name).update_message(
                message.id, message.pop_receipt, visibility_timeout=0)
        except Exception as exc:
            log.debug("Could not release unstarted message %s: %s", message.id, exc)

    def _renew_leases(self) -> None:
        """Keep in-flight messages invisible: renew each lease at half its life, like the host.

        Runs until the runner is stopping *and* no message is held any more, so invocations
        that outlive a graceful stop keep their messages.
        """
        half = self._lease_seconds / 2
        interval = min(1.0, half / 2)
        while True:
            if self._stopping.is_set():
                with self._idle:  # notified when a message is settled
                    if not self._leases:
                        return
                    self._idle.wait(interval)
            else:
                self._stopping.wait(interval)
            with self._lock:
                if self._stopping.is_set() and not self._leases:
                    return
                leases = [lease for lease in self._leases
                          if time.monotonic() - lease.renewed_at >= half]
            for lease in leases:
                with lease.lock:
                    if lease.finished:
                        continue
                    try:
                        receipt = lease.client.update_message(
                            lease.id, lease.pop_receipt, visibility_timeout=self._lease_seconds)
                        lease.pop_receipt = receipt.pop_receipt or lease.pop_receipt
                        lease.renewed_at = time.monotonic()
                    except Exception as exc:
                        log.warning("Could not renew the lease of message %s: %s", lease.id, exc)

    # -- queue trigger -------------------------------------------------------------------

    def _handle_message(self, fn: IndexedFunction, trigger: QueueTriggerBinding,
                        message: QueueMessage) -> None:
        lease = _Lease(self._client(trigger.connection_string, trigger.queue_name), message)
        with self._lock:
            self._leases.add(lease)
        try:
            self._process(fn, trigger, message, lease)
        except Exception:
            log.exception("Storage error while completing message %s of '%s'", message.id,
                          trigger.queue_name)
        finally:
            with self._idle:
                self._leases.discard(lease)
                self._idle.notify_all()

    def _process(self, fn: IndexedFunction, trigger: QueueTriggerBinding, message: QueueMessage,
                 lease: _Lease) -> None:
        opts = self.queues_options
        dequeue_count = message.dequeue_count or 1
        # QueueProcessor.BeginProcessingMessageAsync: a message already past the limit (its
        # last attempt crashed the host, say) goes to poison without an invocation.
        if dequeue_count > opts.max_dequeue_count:
            self._poison(fn, trigger, message, lease)
            return
        try:
            body = self._decode(message.content or "")
        except (binascii.Error, ValueError):
            # Storage extension 5.x (extension bundle 4.x) moves a message that fails
            # messageEncoding decoding straight to the poison queue without invoking the
            # function (azure-sdk-for-net PR #18326); 4.x failed the invocation instead.
            log.error("Message %s on '%s' is not valid base64 (host.json messageEncoding is "
                      "'base64'; senders need TextBase64EncodePolicy): poisoning it without "
                      "invoking %s", message.id, trigger.queue_name, fn.name)
            self._poison(fn, trigger, message, lease)
            return
        trigger_message = TriggerQueueMessage(  # type: ignore[no-untyped-call]
            id=message.id, body=body, dequeue_count=dequeue_count,
            insertion_time=message.inserted_on, expiration_time=message.expires_on,
            time_next_visible=message.next_visible_on, pop_receipt=lease.pop_receipt)
        outs = {o.param: _QueueOut(o) for o in fn.outputs}

        def flush() -> None:
            # Output bindings are written only after the function returned successfully.
            for binding in fn.outputs:
                for payload in binding.payloads(outs[binding.param].get()):
                    self._send(binding.connection_string, binding.queue_name, self._encode(payload))

        ok = self._invoke(fn, {trigger.param: trigger_message, **outs},
                          reason=f"New queue message detected on '{trigger.queue_name}'.",
                          after_success=flush)
        if ok:
            self._settle(lease, delete=True)
        elif dequeue_count >= opts.max_dequeue_count:
            # QueueProcessor.CompleteProcessingMessageAsync: the last allowed attempt failed.
            self._poison(fn, trigger, message, lease)
        else:
            self._settle(lease, delete=False, visibility=opts.visibility_timeout)

    def _poison(self, fn: IndexedFunction, trigger: QueueTriggerBinding, message: QueueMessage,
                lease: _Lease) -> None:
        poison = trigger.queue_name + POISON_SUFFIX
        log.warning("Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
                    self.queues_options.max_dequeue_count, poison)
        # The original text, untouched: it keeps whatever encoding it was sent with.
        self._send(trigger.connection_string, poison, message.content or "")
        self._settle(lease, delete=True)
        with self._lock:
            s = self._stats[fn.name]
            self._stats[fn.name] = dataclasses.replace(s, poisoned=s.poisoned + 1)
        self._report(fn.name, "poisoned", 0.0)

    # -- invocation ----------------------------------------------------------------------

    def _invoke(self, fn: IndexedFunction, kwargs: dict[str, Any], *, reason: str,
                after_success: Callable[[], None] | None = None) -> bool:
        invocation_id = str(uuid.uuid4())
        if fn.pass_context:
            kwargs["context"] = _Context(invocation_id, fn.name, self._directory)
        with self._lock:
            self._active += 1
            s = self._stats[fn.name]
            self._stats[fn.name] = dataclasses.replace(s, invocations=s.invocations + 1)
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", fn.name, reason, invocation_id)
        started = time.perf_counter()
        ok = False
        try:
            result = fn.user_function(**kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
            if result is not None:
                log.warning("Functions.%s returned a value but has no $return binding; ignored",
                            fn.name)
            if after_success is not None:
                after_success()
            ok = True
        except Exception:
            duration = time.perf_counter() - started
            log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)", fn.name,
                      invocation_id, duration * 1000, exc_info=True)
        else:
            duration = time.perf_counter() - started
            log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", fn.name,
                     invocation_id, duration * 1000)
        finally:
            with self._lock:
                self._active -= 1
                s = self._stats[fn.name]
                self._stats[fn.name] = dataclasses.replace(
                    s, successes=s.successes + ok, failures=s.failures + (not ok))
                self._idle.notify_all()
        self._report(fn.name, "succeeded" if ok else "failed", duration)
        return ok

    def _report(self, name: str, outcome: Outcome, duration: float) -> None:
        callback = self.on_invocation
        if callback is None:
            return
        try:
            callback(name, outcome, duration)
        except Exception:
            log.exception("on_invocation callback failed")

    # -- timer trigger -------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock() if self._clock is not None else datetime.now(UTC)
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    def _timer_loop(self, fn: IndexedFunction, trigger: TimerTriggerBinding) -> None:
        schedule = trigger.schedule
        if trigger.run_on_startup and not self._stopping.is_set():
            self._invoke_timer(fn, trigger, scheduled=self._now(), past_due=False,
                               reason="Timer fired on startup (runOnStartup).")
        due = schedule.next_after(self._now())
        log.info("%s: next run at %s", fn.name, due.isoformat())
        while not self._stopping.is_set():
            now = self._now()
            if now < due:
                self._stopping.wait(min((due - now).total_seconds(), self._timer_tick))
                continue
            # Late by more than one interval (slow previous run, suspended machine, a test
            # clock that jumped): the host flags the invocation as past due.
            interval = schedule.next_after(due) - due
            self._invoke_timer(fn, trigger, scheduled=due, past_due=now - due > interval,
                               reason=f"Timer fired at {now.isoformat()}")
            # Slots missed while the invocation ran are skipped, never queued up.
            due = schedule.next_after(max(self._now(), due))

    def _invoke_timer(self, fn: IndexedFunction, trigger: TimerTriggerBinding, *,
                      scheduled: datetime, past_due: bool, reason: str) -> Outcome:
        with self._singletons[fn.name]:  # singleton: never two runs of one timer at once
            last = self._timer_last.get(fn.name)
            now = self._now()
            status = {  # the host's ScheduleStatus: Next is the run after this one, from now
                "Last": (last or datetime.min.replace(tzinfo=UTC)).isoformat(),
                "Next": trigger.schedule.next_after(max(now, scheduled)).isoformat(),
                "LastUpdated": now.isoformat(),
            }
            request = TimerRequest(past_due=past_due, schedule_status=status,
                                   schedule={"AdjustForDST": True})
            with self._lock:
                self._timers_running += 1
            try:
                # Timers are not retried: a failure is logged and the next slot runs as usual.
                ok = self._invoke(fn, {trigger.param: request}, reason=reason)
            finally:
                with self._lock:
                    self._timers_running -= 1
            self._timer_last[fn.name] = scheduled
            return "succeeded" if ok else "failed"

    # -- idleness ------------------------------------------------------------------------

    def _busy_locked(self) -> bool:
        return self._active > 0 or any(listener.in_flight for listener in self._listeners)

    def _notify_idle(self) -> None:
        with self._idle:
            self._idle.notify_all()

    def _is_idle(self) -> bool:
        with self._lock:
            if self._busy_locked():
                return False
        for listener in list(self._listeners):
            t = listener.trigger
            try:
                props = self._client(t.connection_string, t.queue_name).get_queue_properties()
            except Exception:
                return False
            if props.approximate_message_count:
                return False
        return True

    def _busy_report(self) -> str:
        with self._lock:
            parts = [f"{self._active} invocation(s) running"]
            parts += [f"{listener.trigger.queue_name}: {listener.in_flight} in flight"
                      for listener in self._listeners]
        return ", ".join(parts)


async def _await(awaitable: typing.Awaitable[Any]) -> Any:
    return await awaitable


# ---------------------------------------------------------------------------------------
# CLI: python -m devtools.runner
# ---------------------------------------------------------------------------------------


def load_app(target: str) -> func.FunctionApp:
    """Import ``module``, ``module:attribute`` or ``path/to/file.py`` and find its FunctionApp.

    Like the worker, a module must define exactly one ``FunctionApp`` instance unless an
    attribute is named.
    """
    module_name, _, attribute = target.partition(":")
    module: ModuleType
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name).resolve()
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise RunnerError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise  # a missing dependency of the app: keep the traceback
            raise RunnerError(f"cannot import '{module_name}' from {os.getcwd()}: run from the "
                              "project root or pass --app") from None
    if attribute:
        app = getattr(module, attribute, None)
        if not isinstance(app, func.FunctionApp):
            raise RunnerError(f"{target} is not an azure.functions.FunctionApp")
        return app
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionApp)]
    if len(apps) != 1:
        raise RunnerError(f"{module_name} defines {len(apps)} FunctionApp instances; expected one "
                          "(or name it: --app module:attribute)")
    return apps[0]


def _cli_settings(path: Path) -> dict[str, str]:
    """App settings as Core Tools sees them: the environment wins over local.settings.json."""
    try:
        local = load_local_settings(path)
    except RunnerError:
        if path.exists():
            raise
        log.warning("%s not found: using environment variables only", path)
        local = {}
    settings = dict(os.environ)
    for key, value in local.items():
        if key in os.environ and os.environ[key] != value:
            log.warning("Skipping '%s' from local settings as it's already defined in current "
                        "environment variables.", key)
        else:
            settings[key] = value
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.runner",
        description="Run the Functions app's queue and timer functions locally against Azurite "
                    "(a stand-in for `func start`).")
    parser.add_argument("--app", default="function_app",
                        help="module, module:attribute or .py file with the FunctionApp "
                             "(default: function_app)")
    parser.add_argument("--settings", default="local.settings.json", type=Path,
                        help="Core Tools settings file (default: local.settings.json)")
    parser.add_argument("--host-json", default="host.json", type=Path,
                        help="host.json (default: host.json)")
    parser.add_argument("--stop-timeout", default=30.0, type=float,
                        help="seconds to wait for running invocations on Ctrl-C (default: 30)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    # azure-core logs every HTTP request at INFO.
    logging.getLogger("azure").setLevel(logging.WARNING)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())

    try:
        settings = _cli_settings(args.settings)
        # Exported before the import, as Core Tools starts the worker with them set: an app
        # that reads os.environ at import time sees its settings.
        with exported_settings(settings):
            app = load_app(args.app)
            runner = LocalRunner(app, settings=settings, host_json=args.host_json)
            print("\nFunctions:\n")
            for line in runner.describe():
                print(f"\t{line}")
            print(f"\nQueues: {runner.queues_options.describe()}\n", flush=True)
            stop = threading.Event()

            def on_signal(signum: int, frame: FrameType | None) -> None:
                if stop.is_set():
                    raise KeyboardInterrupt  # second Ctrl-C: stop waiting
                stop.set()

            # Installed explicitly: a process started in the background by a non-interactive
            # shell inherits SIGINT as *ignored*, and Python then never raises
            # KeyboardInterrupt, so Ctrl-C (or a test's SIGINT) would be lost.
            signal.signal(signal.SIGINT, on_signal)
            signal.signal(signal.SIGTERM, on_signal)
            runner.start()
            stop.wait()
            log.info("Stopping (waiting up to %gs for running invocations)...", args.stop_timeout)
            try:
                runner.stop(timeout=args.stop_timeout)
            except KeyboardInterrupt:  # a second Ctrl-C: do not wait any longer
                log.warning("Forced stop: running invocations were abandoned")
                return 130
    except RunnerError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
