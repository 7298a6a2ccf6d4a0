"""kube-apiserver's PATCH formats: JSON merge patch (RFC 7386), strategic merge patch and JSON
patch (RFC 6902), applied to a stored object before the update path validates it."""

from __future__ import annotations

import copy
from typing import Any

from devtools.standins.kube.objects import ApiError, bad_request

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
