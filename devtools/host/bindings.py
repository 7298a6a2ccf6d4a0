"""Bindings as the host sees them: from the worker's function metadata to host-shaped data.

The host learns the app's functions only from the worker's ``FunctionMetadataResponse``
(worker indexing: ``raw_bindings`` are the function.json binding objects as JSON strings;
azure_functions_runtime ``loader.py`` ``process_indexed_function``), resolves ``%Setting%``
tokens in them, and talks to the worker in ``TypedData``. This module turns metadata into
:class:`FunctionSpec` and builds/reads the ``TypedData`` the host would send/receive:

* queue trigger: the body as a string plus trigger metadata ``QueueTrigger``, ``Id``,
  ``DequeueCount``, ``InsertionTime``, ``ExpirationTime``, ``NextVisibleTime``, ``PopReceipt``
  (azure-sdk-for-net ``…Storage.Queues/src/Triggers/QueueTriggerBindingDataProvider`` /
  ``QueueTriggerBinding.CreateBindingDataContract``); values other than strings are sent as
  JSON, as azure-functions-host ``GrpcMessageConversionExtensions.ToRpc`` does for types it
  has no case for (``ToRpcDefault``);
* timer trigger: ``TimerInfo`` as JSON ``{"Schedule": …, "ScheduleStatus": …, "IsPastDue": …}``
  (azure-webjobs-sdk-extensions ``Timers/TimerInfo.cs``);
* outputs: ``FunctionBinding.ReadAsEnumerable`` (see :func:`read_as_enumerable`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from devtools.host import protos
from devtools.host.settings import (
    DEFAULT_STORAGE_SETTING,
    HostError,
    StorageConnection,
    normalize_queue_name,
    resolve_connection,
    resolve_setting_tokens,
)


@dataclasses.dataclass(frozen=True)
class QueueTrigger:
    param: str
    queue_name: str
    connection: StorageConnection


@dataclasses.dataclass(frozen=True)
class TimerTrigger:
    param: str
    schedule: str  # %Setting% already resolved
    run_on_startup: bool = False
    use_monitor: bool = True


@dataclasses.dataclass(frozen=True)
class HttpTrigger:
    param: str
    route: str
    methods: tuple[str, ...]  # upper case; empty = every method
    auth_level: str  # anonymous | function | admin


@dataclasses.dataclass(frozen=True)
class QueueOutput:
    param: str
    queue_name: str
    connection: StorageConnection


@dataclasses.dataclass(frozen=True)
class FunctionSpec:
    """One function as the host drives it (from the worker's metadata, settings resolved)."""

    name: str
    function_id: str
    trigger: QueueTrigger | TimerTrigger | HttpTrigger
    outputs: tuple[QueueOutput, ...] = ()

    def describe(self) -> list[str]:
        """``func start``-style lines: the trigger, then one per output."""
        t = self.trigger
        if isinstance(t, QueueTrigger):
            head = f"{self.name}: queueTrigger {t.queue_name} ({t.connection.name})"
        elif isinstance(t, TimerTrigger):
            head = f"{self.name}: timerTrigger {t.schedule!r} (UTC{', runOnStartup' if t.run_on_startup else ''})"
        else:
            head = f"{self.name}: [{','.join(t.methods) or 'ALL'}] /api/{t.route} (authLevel {t.auth_level})"
        return [head] + [f"    -> queue {o.queue_name} ({o.connection.name}) as {o.param}" for o in self.outputs]


def function_specs(metadata: Mapping[str, Any], settings: Mapping[str, str]) -> tuple[list[FunctionSpec], dict[str, str]]:
    """(functions the host runs, {skipped function: why}) from the worker's metadata.

    ``AzureWebJobs.<name>.Disabled`` set to true skips a function, as the host does
    (azure-functions-host ``Utility.IsFunctionDisabled`` / ``FunctionMetadataManager``).
    A ``%Setting%`` that does not resolve is an indexing error naming the setting.
    """
    specs: list[FunctionSpec] = []
    skipped: dict[str, str] = {}
    for name, meta in metadata.items():
        if settings.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in ("true", "1"):
            skipped[name] = f"disabled by the AzureWebJobs.{name}.Disabled setting"
            continue
        bindings = [json.loads(raw) for raw in meta.raw_bindings]
        result = _spec(name, meta.function_id, bindings, settings)
        if isinstance(result, str):
            skipped[name] = result
        else:
            specs.append(result)
    return specs, skipped


def _spec(name: str, function_id: str, bindings: list[dict[str, Any]], settings: Mapping[str, str]) -> FunctionSpec | str:
    def resolve(b: dict[str, Any]) -> dict[str, Any]:
        return {k: (resolve_setting_tokens(v, settings, function_name=name)
                    if isinstance(v, str) and k not in ("name", "type", "direction") else v) for k, v in b.items()}

    bindings = [resolve(b) for b in bindings]
    triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
    if len(triggers) != 1:
        raise HostError(f"{name}: expected exactly one trigger binding, found {len(triggers)}")
    t = triggers[0]
    trigger: QueueTrigger | TimerTrigger | HttpTrigger
    if t["type"] == "queueTrigger":
        conn = str(t.get("connection") or DEFAULT_STORAGE_SETTING)
        trigger = QueueTrigger(str(t["name"]), normalize_queue_name(str(t["queueName"]), name),
                               resolve_connection(conn, settings, name))
    elif t["type"] == "timerTrigger":
        trigger = TimerTrigger(str(t["name"]), str(t["schedule"]), bool(t.get("runOnStartup", False)),
                               bool(t.get("useMonitor", True)))
    elif t["type"] == "httpTrigger":
        # Route defaults to the function name (azure-functions-host HttpTriggerAttribute /
        # docs "Customize the HTTP endpoint"); authLevel defaults to function.
        methods = tuple(str(m).upper() for m in (t.get("methods") or ()))
        trigger = HttpTrigger(str(t["name"]), str(t.get("route") or name).strip("/"), methods,
                              str(t.get("authLevel") or "function").lower())
    else:
        return f"{t['type']} functions are not run by the local host"
    outputs: list[QueueOutput] = []
    for b in bindings:
        if b is t:
            continue
        direction = str(b.get("direction", "")).upper()
        if b.get("type") == "http" and direction == "OUT":
            continue  # the HTTP response: read from the invocation's return value
        if b.get("type") != "queue" or direction != "OUT":
            return f"binding '{b.get('name')}' ({b.get('type')}, {direction}) is not supported locally"
        conn = str(b.get("connection") or DEFAULT_STORAGE_SETTING)
        outputs.append(QueueOutput(str(b["name"]), normalize_queue_name(str(b["queueName"]), name),
                                   resolve_connection(conn, settings, name)))
    return FunctionSpec(name, function_id, trigger, tuple(outputs))


# -- host -> worker -----------------------------------------------------------------------------


def _json(value: Any) -> Any:
    return protos.TypedData(json=json.dumps(value))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def queue_trigger_data(param: str, body: str, *, message_id: str, dequeue_count: int,
                       inserted_on: datetime | None, expires_on: datetime | None,
                       next_visible_on: datetime | None, pop_receipt: str) -> tuple[list[Any], dict[str, Any]]:
    """(input_data, trigger_metadata) of a queue trigger invocation, host-shaped."""
    metadata = {
        "QueueTrigger": protos.TypedData(string=body),
        "Id": protos.TypedData(string=message_id),
        "PopReceipt": protos.TypedData(string=pop_receipt),
        "DequeueCount": _json(dequeue_count),
        "InsertionTime": _json(_iso(inserted_on)),
        "ExpirationTime": _json(_iso(expires_on)),
        "NextVisibleTime": _json(_iso(next_visible_on)),
    }
    return [protos.ParameterBinding(name=param, data=protos.TypedData(string=body))], metadata


def timer_trigger_data(param: str, *, status: dict[str, str] | None, past_due: bool) -> list[Any]:
    """input_data of a timer invocation: ``TimerInfo`` as the host serialises it (status may be null)."""
    info = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": status, "IsPastDue": past_due}
    return [protos.ParameterBinding(name=param, data=_json(info))]


# -- worker -> host -----------------------------------------------------------------------------


def _is_json(text: str) -> bool:
    # azure-functions-host src/WebJobs.Script/Utility.cs IsJson: trimmed, {…} or […].
    text = text.strip()
    return (text.startswith("{") and text.endswith("}")) or (text.startswith("[") and text.endswith("]"))


def _jtoken_to_string(token: Any) -> str:
    # JValue.ToString() of a string is the string itself; JObject/JArray.ToString() is
    # JToken.ToString() is Newtonsoft.Json Formatting.Indented: two spaces, ": " between key
    # and value, non-ASCII kept as is, and CRLF line ends as the project's host reference
    # records (Newtonsoft writes the writer's NewLine; on a Linux instance that could be LF —
    # not verified against a running host).
    if isinstance(token, str):
        return token
    if isinstance(token, (dict, list)):
        return json.dumps(token, indent=2, ensure_ascii=False).replace("\n", "\r\n")
    return json.dumps(token)


def read_as_enumerable(data: Any) -> list[str | bytes]:
    """Messages a queue output writes for one ``TypedData`` value.

    azure-functions-host ``src/WebJobs.Script/Binding/FunctionBinding.cs`` ``ReadAsEnumerable``
    then ``BindAsyncCollectorAsync<string>``: a JSON array (a ``list`` output arrives as
    ``TypedData.json``, azure.functions ``QueueMessageOutConverter.encode``) fans out one
    message per element, each ``ToString()``-ed (a string element verbatim); a string that
    looks like JSON (``Utility.IsJson``) is parsed, so an object is rewritten indented with
    CRLF line endings and an array fans out; any other string or bytes is one message as is.
    """
    kind = data.WhichOneof("data") if data is not None else None
    if kind is None:
        return []
    value = getattr(data, kind)
    if kind == "bytes":
        return [value]
    if kind in ("string", "json") and isinstance(value, str):
        if kind == "json" or _is_json(value):
            try:
                token = json.loads(value)
            except json.JSONDecodeError as exc:
                # JToken.Parse throws: the output binding, hence the invocation, fails.
                raise HostError(f"output looks like JSON but does not parse: {exc}") from None
            return [_jtoken_to_string(t) for t in (token if isinstance(token, list) else [token])]
        return [value]
    if kind in ("int", "double"):
        return [str(value)]
    raise HostError(f"a queue output cannot hold TypedData {kind}")


def failure_message(response: Any) -> str | None:
    """The invocation's error message, or None when it succeeded."""
    result = getattr(response, "result", None)
    if result is None:
        return "the worker sent no result"
    if result.status == protos.StatusResult.Success:
        return None
    exc = result.exception
    return (exc.message if exc is not None else "") or "failed"
