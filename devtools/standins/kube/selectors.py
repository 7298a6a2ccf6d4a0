"""kube-apiserver's list filters: label selectors, field selectors and continue tokens (apimachinery
``labels``/``fields`` and the paginated list of the storage layer)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devtools.standins.kube.objects import Obj, bad_request

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


def encode_continue(rv: int, start_key: str, snapshot: int | None = None) -> str:
    """apimachinery ``storage.EncodeContinue``: version, resourceVersion, start key. ``snapshot``
    (the stand-in's own, inside the opaque token) names the list snapshot continuation reads."""
    token: dict[str, object] = {"v": "meta.k8s.io/v1", "rv": rv, "start": start_key + "\x00"}
    if snapshot is not None:
        token["snap"] = snapshot
    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")


def continue_snapshot(token: str) -> int | None:
    """The snapshot a continue token reads (None for a token without one)."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        snap = raw.get("snap")
        return int(snap) if snap is not None else None
    except (ValueError, binascii.Error, AttributeError, TypeError):
        return None


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
