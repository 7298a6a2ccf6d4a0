"""Pure helpers for the Kubernetes API stand-in: Status errors, selectors, validation, patches.

Nothing here does I/O or holds state; ``kube_cluster`` keeps the objects and ``kube`` serves them.
The texts copy what kube-apiserver 1.33 answers, because the app (and its tests) read them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import random
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]

# --------------------------------------------------------------------------- time, names


def now_rfc3339() -> str:
    """metav1.Time: second precision, UTC, ``Z`` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

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
    if not pattern.match(name):
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
            (prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)))
            or not name
            or len(name) > 63
            or not _QUALIFIED_NAME.match(name)
        ):
            errs.append(FieldError(path, "FieldValueInvalid", f"Invalid value: {_q(key)}: {_QUALIFIED_MSG}"))
        if not isinstance(value, str):
            errs.append(
                FieldError(f"{path}", "FieldValueInvalid", f"Invalid value: {_q(value)}: label values must be strings")
            )
        elif len(value) > 63 or not _LABEL_VALUE.match(value):
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


# --------------------------------------------------------------------------- label selectors


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = field(default_factory=frozenset)

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        if self.op in ("=", "in"):
            return labels.get(self.key) in self.values
        # != and notin also match objects without the key, as in k8s
        v = labels.get(self.key)
        return v is None or v not in self.values


_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_label_selector(text: str | None) -> list[Requirement]:
    """The string form of a label selector (``a=b,c!=d,e in (f,g),!h``); raises a 400 on bad input."""
    if text is None or text.strip() == "":
        return []
    reqs: list[Requirement] = []
    for raw in _split_top_level(text):
        part = raw.strip()
        m = re.fullmatch(rf"({_KEY})\s+(in|notin)\s+\(([^()]*)\)", part)
        if m:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), values))
            continue
        m = re.fullmatch(rf"({_KEY})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)", part)
        if m:
            op = "!=" if m.group(2) == "!=" else "="
            reqs.append(Requirement(m.group(1), op, frozenset([m.group(3)])))
            continue
        m = re.fullmatch(rf"!\s*({_KEY})", part)
        if m:
            reqs.append(Requirement(m.group(1), "!"))
            continue
        m = re.fullmatch(rf"({_KEY})", part)
        if m:
            reqs.append(Requirement(m.group(1), "exists"))
            continue
        raise bad_request(f"unable to parse requirement: found '{part}', expected: identifier, !, in, notin, =, ==, !=")
    return reqs


def labels_match(reqs: Iterable[Requirement], labels: Mapping[str, str] | None) -> bool:
    lab = labels or {}
    return all(r.matches(lab) for r in reqs)


def match_label_selector_obj(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector object (matchLabels + matchExpressions)."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), set(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# --------------------------------------------------------------------------- field selectors

JOB_FIELDS = {"metadata.name", "metadata.namespace", "status.successful"}
POD_FIELDS = {
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
}
NODE_FIELDS = {"metadata.name", "spec.unschedulable"}
NAMESPACE_FIELDS = {"metadata.name", "status.phase"}


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    equal: bool
    value: str


def parse_field_selector(text: str | None, supported: set[str], kind: str, version: str) -> list[FieldRequirement]:
    if text is None or text.strip() == "":
        return []
    out: list[FieldRequirement] = []
    for raw in text.split(","):
        part = raw.strip()
        m = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        if m.group(1) not in supported:
            raise bad_request(f"field label not supported: {m.group(1)}")
        out.append(FieldRequirement(m.group(1), m.group(2) != "!=", m.group(3)))
    return out


def field_value(obj: Obj, path: str) -> str:
    if path == "status.successful":
        return str(int((obj.get("status") or {}).get("succeeded") or 0))
    if path == "spec.unschedulable":
        return "true" if (obj.get("spec") or {}).get("unschedulable") else "false"
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def fields_match(reqs: Iterable[FieldRequirement], obj: Obj) -> bool:
    return all((field_value(obj, r.path) == r.value) == r.equal for r in reqs)


# --------------------------------------------------------------------------- continue tokens


def encode_continue(rv: int, start_key: str) -> str:
    token = {"v": "meta.k8s.io/v1", "rv": rv, "start": start_key + "\x00"}
    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_continue(token: str) -> str:
    """Returns the key to resume after (exclusive)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data.get("v") != "meta.k8s.io/v1" or not isinstance(data.get("start"), str):
            raise ValueError("bad version")
        start = str(data["start"])
        return start[:-1] if start.endswith("\x00") else start
    except (ValueError, binascii.Error, json.JSONDecodeError, AttributeError) as e:
        raise bad_request(f"continue key is not valid: {e}") from e


# --------------------------------------------------------------------------- patches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (null deletes)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


_MERGE_KEYS = {
    "containers": "name",
    "env": "name",
    "tolerations": "key",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
}


def strategic_merge_patch(target: Any, patch: Any, key: str | None = None) -> Any:
    """A practical subset of strategic merge patch: maps merge, known lists merge by their merge key,
    ``$patch: delete``/``replace`` directives on maps, other lists replace."""
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        if directive == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        if directive == "delete":
            return None
        result = dict(target) if isinstance(target, dict) else {}
        for k, v in patch.items():
            if k.startswith("$"):
                continue
            if v is None:
                result.pop(k, None)
                continue
            merged = strategic_merge_patch(result.get(k), v, k)
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
        return result
    if (
        isinstance(patch, list)
        and key in _MERGE_KEYS
        and isinstance(target, list)
        and all(isinstance(i, dict) for i in patch)
    ):
        mk = _MERGE_KEYS[key]
        out = [copy.deepcopy(i) for i in target]
        for item in patch:
            idx = next((n for n, cur in enumerate(out) if isinstance(cur, dict) and cur.get(mk) == item.get(mk)), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    out.pop(idx)
            elif idx is None:
                out.append(copy.deepcopy(item))
            else:
                out[idx] = strategic_merge_patch(out[idx], item)
        return out
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"json patch: invalid path {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise bad_request(f"json patch: path element {p!r} not found")
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError) as e:
                raise bad_request(f"json patch: bad index {p!r}") from e
        else:
            raise bad_request(f"json patch: cannot traverse into {p!r}")
    return cur


def _put(doc: Any, parts: list[str], value: Any, *, replace: bool) -> None:
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise bad_request(f"json patch: replace: missing key {last!r}")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
            return
        try:
            idx = int(last)
        except ValueError as e:
            raise bad_request(f"json patch: bad index {last!r}") from e
        if replace:
            parent[idx] = value
        else:
            parent.insert(idx, value)
    else:
        raise bad_request("json patch: parent is not a container")


def _take(doc: Any, parts: list[str]) -> Any:
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    try:
        return parent.pop(last) if isinstance(parent, dict) else parent.pop(int(last))
    except (KeyError, IndexError, ValueError, AttributeError) as e:
        raise bad_request(f"json patch: remove: missing {'/' + '/'.join(parts)!r}") from e


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise bad_request("json patch: the body must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request("json patch: each operation needs 'op' and 'path'")
        kind, parts = op["op"], _pointer(op["path"])
        if not parts:
            if kind in ("add", "replace"):
                doc = copy.deepcopy(op.get("value"))
                continue
            raise bad_request("json patch: operation on the document root is not supported")
        if kind == "add":
            _put(doc, parts, copy.deepcopy(op.get("value")), replace=False)
        elif kind == "replace":
            _put(doc, parts, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "remove":
            _take(doc, parts)
        elif kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise ApiError(
                    422,
                    f"the server rejected our request due to an error in our request: test failed for {op['path']}",
                    reason="Invalid",
                )
        elif kind in ("move", "copy"):
            src = _pointer(str(op.get("from", "")))
            value = _take(doc, src) if kind == "move" else copy.deepcopy(_walk(doc, src))
            _put(doc, parts, value, replace=False)
        else:
            raise bad_request(f"json patch: unknown operation {kind!r}")
    return doc


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
