"""The protobuf messages the worker runtime expects, as plain Python classes.

The proxy worker injects its generated protobuf module into the runtime as
``properties["protos"]`` (Azure/azure-functions-python-worker
``workers/proxy_worker/dispatcher.py`` ``_handle__worker_init_request``); the runtime only
builds and reads messages through that module. This shim declares exactly the messages,
fields and constants ``azure_functions_runtime`` 1.3.0 touches (found by reading
``handle_event.py``, ``loader.py``, ``functions.py``, ``bindings/meta.py``,
``bindings/datumdef.py``, ``bindings/context.py``, ``bindings/nullable_converters.py``,
``utils/helpers.py`` and ``utils/tracing.py``), with protobuf's semantics where the runtime
relies on them: unset scalar fields read as their default, ``WhichOneof`` names the one field
set in a oneof group, and enum values are plain ints. Written from that reading; no .proto
file or generated code is copied.

Every class is module-level and picklable, so requests and responses cross the pipe between
the host and the worker process unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BindingInfo",
    "FunctionEnvironmentReloadRequest",
    "FunctionEnvironmentReloadResponse",
    "FunctionLoadRequest",
    "FunctionLoadResponse",
    "FunctionMetadataResponse",
    "FunctionsMetadataRequest",
    "InvocationRequest",
    "InvocationResponse",
    "NullableBool",
    "NullableDouble",
    "NullableString",
    "NullableTimestamp",
    "ParameterBinding",
    "RetryContext",
    "RpcException",
    "RpcFunctionMetadata",
    "RpcHttp",
    "RpcHttpCookie",
    "RpcRetryOptions",
    "RpcTraceContext",
    "StatusResult",
    "StreamingMessage",
    "TypedData",
    "WorkerInitRequest",
    "WorkerInitResponse",
    "WorkerMetadata",
]


class Message:
    """A protobuf-like message: keyword construction, defaults for unset fields, oneofs."""

    FIELDS: ClassVar[dict[str, Any]] = {}  # name -> default (a factory when callable)
    ONEOFS: ClassVar[dict[str, tuple[str, ...]]] = {}  # group -> member fields

    def __init__(self, **fields: Any) -> None:
        unknown = set(fields) - set(self.FIELDS)
        if unknown:
            # protobuf raises ValueError for an unknown keyword too.
            raise ValueError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        self._set = {k for k, v in fields.items() if v is not None}
        for name, default in self.FIELDS.items():
            value = fields.get(name)
            if value is None:
                value = default() if callable(default) else default
            setattr(self, name, value)

    def WhichOneof(self, group: str) -> str | None:
        """The member of oneof ``group`` that was set, or None (protobuf semantics)."""
        return next((f for f in self.ONEOFS.get(group, ()) if f in self._set), None)

    def HasField(self, name: str) -> bool:
        return name in self._set

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.FIELDS if k in self._set)
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]


def _message(name: str, fields: dict[str, Any], oneofs: dict[str, tuple[str, ...]] | None = None,
             **constants: Any) -> type[Message]:
    attrs: dict[str, Any] = {"FIELDS": fields, "ONEOFS": oneofs or {}, "__module__": __name__,
                             "__qualname__": name}
    attrs.update(constants)
    return type(name, (Message,), attrs)


# -- data -------------------------------------------------------------------------------------

_TYPED_DATA_FIELDS = ("string", "json", "bytes", "stream", "http", "int", "double",
                      "collection_bytes", "collection_string", "collection_double",
                      "collection_sint64", "model_binding_data", "collection_model_binding_data")
TypedData = _message("TypedData", dict.fromkeys(_TYPED_DATA_FIELDS), {"data": _TYPED_DATA_FIELDS})
CollectionString = _message("CollectionString", {"string": list})
CollectionBytes = _message("CollectionBytes", {"bytes": list})
ParameterBinding = _message("ParameterBinding", {"name": "", "data": None, "rpc_shared_memory": None},
                            {"rpc_data": ("data", "rpc_shared_memory")})
NullableString = _message("NullableString", {"value": None})
NullableBool = _message("NullableBool", {"value": None})
NullableDouble = _message("NullableDouble", {"value": None})
NullableTimestamp = _message("NullableTimestamp", {"value": None})


class _SameSite:
    # RpcHttpCookie.SameSite: None is a Python keyword, so the runtime reads it with getattr.
    Lax = 1
    Strict = 2
    ExplicitNone = 3


setattr(_SameSite, "None", 0)
RpcHttpCookie = _message("RpcHttpCookie", dict.fromkeys(
    ("name", "value", "domain", "path", "expires", "secure", "http_only", "same_site", "max_age")),
    SameSite=_SameSite)
RpcHttp = _message("RpcHttp", {  # an unset message field reads as an empty message, as in protobuf
    "method": "", "url": "", "headers": dict, "body": TypedData, "params": dict, "status_code": "",
    "query": dict, "enable_content_negotiation": False, "raw_body": None, "identities": list,
    "cookies": list, "nullable_headers": dict, "nullable_params": dict, "nullable_query": dict})

# -- indexing ---------------------------------------------------------------------------------

# BindingInfo.Direction and BindingInfo.DataType enum values (ints, as protobuf exposes them);
# azure.functions' Binding.direction / .data_type return the same ints.
BindingInfo = _message("BindingInfo", {"type": "", "direction": 0, "data_type": 0},
                       in_=0, out=1, inout=2, undefined=0, string=1, binary=2, stream=3)
RpcRetryOptions = _message("RpcRetryOptions", dict.fromkeys(
    ("max_retry_count", "retry_strategy", "delay_interval", "minimum_interval", "maximum_interval")))
RpcFunctionMetadata = _message("RpcFunctionMetadata", {
    "name": "", "function_id": "", "directory": "", "script_file": "", "entry_point": "",
    "language": "", "bindings": dict, "raw_bindings": list, "retry_options": None,
    "properties": dict, "managed_dependency_enabled": False, "is_proxy": False})
WorkerMetadata = _message("WorkerMetadata", dict.fromkeys(
    ("runtime_name", "runtime_version", "worker_version", "worker_bitness", "custom_properties")))

# -- results ----------------------------------------------------------------------------------

RpcException = _message("RpcException", {"message": "", "stack_trace": "", "source": ""})
StatusResult = _message("StatusResult", {"status": 0, "exception": None, "result": ""},
                        Failure=0, Success=1, Cancelled=2)

# -- requests (what the host sends) -----------------------------------------------------------

WorkerInitRequest = _message("WorkerInitRequest", {
    "host_version": "", "capabilities": dict, "function_app_directory": "", "log_categories": dict})
FunctionsMetadataRequest = _message("FunctionsMetadataRequest", {"function_app_directory": ""})
FunctionLoadRequest = _message("FunctionLoadRequest", {"function_id": "", "metadata": None})
RpcTraceContext = _message("RpcTraceContext", {"trace_parent": "", "trace_state": "", "attributes": dict})
RetryContext = _message("RetryContext", {"retry_count": 0, "max_retry_count": 0, "exception": None})
InvocationRequest = _message("InvocationRequest", {
    "invocation_id": "", "function_id": "", "input_data": list, "trigger_metadata": dict,
    "trace_context": RpcTraceContext, "retry_context": RetryContext})
FunctionEnvironmentReloadRequest = _message("FunctionEnvironmentReloadRequest", {
    "environment_variables": dict, "function_app_directory": ""})
StreamingMessage = _message("StreamingMessage", {
    "request_id": "", "worker_init_request": None, "functions_metadata_request": None,
    "function_load_request": None, "invocation_request": None,
    "function_environment_reload_request": None})

# -- responses (what the runtime builds) ------------------------------------------------------

WorkerInitResponse = _message("WorkerInitResponse", {
    "capabilities": dict, "worker_metadata": None, "result": None, "worker_version": ""})
FunctionMetadataResponse = _message("FunctionMetadataResponse", {
    "use_default_metadata_indexing": False, "function_metadata_results": list, "result": None})
FunctionLoadResponse = _message("FunctionLoadResponse", {"function_id": "", "result": None})
InvocationResponse = _message("InvocationResponse", {
    "invocation_id": "", "return_value": None, "result": None, "output_data": list})
FunctionEnvironmentReloadResponse = _message("FunctionEnvironmentReloadResponse", {
    "capabilities": dict, "worker_metadata": None, "result": None})
