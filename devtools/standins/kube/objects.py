"""kube-apiserver's objects as the stand-in stores them: Status errors, resources, name/label
validation and timestamps (apimachinery). Pure: no I/O, no state; ``cluster`` keeps the objects and
``apiserver`` serves them. The texts copy what kube-apiserver 1.33 answers, because the app reads them.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from devtools.standins.metav1_time import now_rfc3339, rfc3339_nano_of, rfc3339_of

Obj = dict[str, Any]
__all__ = ["now_rfc3339", "rfc3339_nano_of", "rfc3339_of"]

# --------------------------------------------------------------------------- time, names


# The alphabet of k8s.io/apimachinery/pkg/util/rand.String (no vowels, no confusable digits).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_name_rng = random.Random()


def random_suffix(n: int = 5) -> str:
    return "".join(_name_rng.choice(_SUFFIX_ALPHABET) for _ in range(n))


def generate_name(prefix: str) -> str:
    """generateName semantics: the prefix is cut so that the result fits in 63 characters."""
    return prefix[: 63 - 5] + random_suffix()


# --------------------------------------------------------------------------- Status errors

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(code: int) -> str:
    return _REASONS.get(code, "InternalError" if code >= 500 else "BadRequest")


class ApiError(Exception):
    """An error answered as a ``Status`` object, exactly as kube-apiserver shapes it."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: Obj | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or reason_for(code)
        self.details = details
        self.headers = dict(headers or {})

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


@dataclass(frozen=True)
class Resource:
    """What the error texts need to know about a resource type."""

    plural: str  # jobs
    group: str  # batch ("" for the core group)
    kind: str  # Job
    api_version: str  # batch/v1
    namespaced: bool = True

    @property
    def qualified(self) -> str:  # jobs.batch / pods
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def details(self, name: str, **extra: Any) -> Obj:
        d: Obj = {"name": name}
        if self.group:
            d["group"] = self.group
        d["kind"] = self.plural
        d.update(extra)
        return d


JOBS = Resource("jobs", "batch", "Job", "batch/v1")
PODS = Resource("pods", "", "Pod", "v1")
NODES = Resource("nodes", "", "Node", "v1", namespaced=False)
NAMESPACES = Resource("namespaces", "", "Namespace", "v1", namespaced=False)


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, f'{res.qualified} "{name}" not found', details=res.details(name))


def already_exists(res: Resource, name: str) -> ApiError:
    return ApiError(409, f'{res.qualified} "{name}" already exists', reason="AlreadyExists", details=res.details(name))


def conflict(res: Resource, name: str, why: str | None = None) -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(409, f'Operation cannot be fulfilled on {res.qualified} "{name}": {why}', details=res.details(name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def route_not_found() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", details={})


def method_not_allowed() -> ApiError:
    return ApiError(405, "the server does not allow this method on the requested resource", details={})


@dataclass
class FieldError:
    field: str
    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueForbidden, FieldValueNotSupported
    detail: str

    def text(self) -> str:
        return f"{self.field}: {self.detail}"


def invalid(res: Resource, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid with one cause per field error, as the apiserver's validation reports them."""
    causes = [{"reason": e.reason, "message": e.detail, "field": e.field} for e in errors]
    summary = errors[0].text() if len(errors) == 1 else "[" + ", ".join(e.text() for e in errors) + "]"
    details: Obj = {"name": name}
    if res.group:
        details["group"] = res.group
    details["kind"] = res.kind
    details["causes"] = causes
    return ApiError(
        422, f'{res.kind}{"." + res.group if res.group else ""} "{name}" is invalid: {summary}', details=details
    )


# --------------------------------------------------------------------------- validation

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
    "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def _q(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def validate_name(name: Any, *, max_len: int, label: bool = False, path: str = "metadata.name") -> list[FieldError]:
    if not isinstance(name, str) or name == "":
        return [FieldError(path, "FieldValueRequired", "Required value: name or generateName is required")]
    errs: list[FieldError] = []
    pattern, msg = (DNS1123_LABEL, LABEL_MSG) if label else (DNS1123_SUBDOMAIN, SUBDOMAIN_MSG)
    if not pattern.fullmatch(name):
        errs.append(FieldError(path, "FieldValueInvalid", f"Invalid value: {_q(name)}: {msg}"))
    if len(name) > max_len:
        errs.append(
            FieldError(
                path, "FieldValueInvalid", f"Invalid value: {_q(name)}: must be no more than {max_len} characters"
            )
        )
    return errs


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [FieldError(path, "FieldValueInvalid", "Invalid value: labels must be a map of string to string")]
    errs: list[FieldError] = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (
            (prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.fullmatch(prefix)))
            or not name
            or len(name) > 63
            or not _QUALIFIED_NAME.fullmatch(name)
        ):
            errs.append(FieldError(path, "FieldValueInvalid", f"Invalid value: {_q(key)}: {_QUALIFIED_MSG}"))
        if not isinstance(value, str):
            errs.append(
                FieldError(f"{path}", "FieldValueInvalid", f"Invalid value: {_q(value)}: label values must be strings")
            )
        elif len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            what = "must be no more than 63 characters" if len(value) > 63 else _LABEL_VALUE_MSG
            errs.append(FieldError(f"{path}", "FieldValueInvalid", f"Invalid value: {_q(value)}: {what}"))
    return errs


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    if annotations is None:
        return []
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        return [FieldError(path, "FieldValueInvalid", "Invalid value: annotations must be a map of string to string")]
    total = sum(len(k) + len(v) for k, v in annotations.items())
    if total > 256 * 1024:
        return [FieldError(path, "FieldValueTooLong", f"Too long: may not be more than 262144 bytes (got {total})")]
    return []


# --------------------------------------------------------------------------- misc


def index_ranges(indexes: Iterable[int]) -> str:
    """``{0,1,2,4}`` → ``"0-2,4"`` (status.completedIndexes / failedIndexes)."""
    out: list[str] = []
    items = sorted(set(indexes))
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(out)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def monotonic() -> float:
    return time.monotonic()
