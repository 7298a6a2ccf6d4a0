"""kube-apiserver's storage (etcd) as the stand-in keeps it: one ``Table`` per resource type, with the
indexes a list needs."""

from __future__ import annotations

import bisect

from devtools.standins.kube.objects import Obj, Resource
from devtools.standins.kube.selectors import FieldRequirement, Requirement, fields_match, labels_match


class Table:
    """Objects of one resource type: per-namespace dicts, a sorted name index (for stable
    ``limit``/``continue`` pages that resume where they stopped) and a label index
    (``(key, value)`` → names) so a selective label selector does not scan every object."""

    def __init__(self, res: Resource) -> None:
        self.res = res
        self.by_ns: dict[str, dict[str, Obj]] = {}
        self.sorted: dict[str, list[str]] = {}
        self.labels: dict[str, dict[tuple[str, str], set[str]]] = {}

    def get(self, ns: str, name: str) -> Obj | None:
        return self.by_ns.get(ns, {}).get(name)

    def __len__(self) -> int:
        return sum(len(d) for d in self.by_ns.values())

    def put(self, obj: Obj) -> None:
        md = obj["metadata"]
        ns, name = md.get("namespace", ""), md["name"]
        objs = self.by_ns.setdefault(ns, {})
        old = objs.get(name)
        objs[name] = obj
        idx = self.labels.setdefault(ns, {})
        if old is None:
            bisect.insort(self.sorted.setdefault(ns, []), name)
        else:
            for kv in (old["metadata"].get("labels") or {}).items():
                s = idx.get(kv)
                if s is not None:
                    s.discard(name)
        for kv in (md.get("labels") or {}).items():
            idx.setdefault(kv, set()).add(name)

    def bulk_put(self, ns: str, objs: list[Obj]) -> None:
        d = self.by_ns.setdefault(ns, {})
        idx = self.labels.setdefault(ns, {})
        names = self.sorted.setdefault(ns, [])
        for obj in objs:
            name = obj["metadata"]["name"]
            d[name] = obj
            names.append(name)
            for kv in (obj["metadata"].get("labels") or {}).items():
                idx.setdefault(kv, set()).add(name)
        names.sort()

    def remove(self, ns: str, name: str) -> Obj | None:
        objs = self.by_ns.get(ns, {})
        old = objs.pop(name, None)
        if old is None:
            return None
        names = self.sorted[ns]
        i = bisect.bisect_left(names, name)
        if i < len(names) and names[i] == name:
            names.pop(i)
        idx = self.labels.get(ns, {})
        for kv in (old["metadata"].get("labels") or {}).items():
            s = idx.get(kv)
            if s is not None:
                s.discard(name)
                if not s:
                    del idx[kv]
        return old

    def namespaces(self) -> list[str]:
        return sorted(ns for ns, d in self.by_ns.items() if d)

    def page(
        self,
        ns: str | None,
        reqs: list[Requirement],
        freqs: list[FieldRequirement],
        start_after: str | None,
        limit: int | None,
    ) -> tuple[list[Obj], str | None, int | None]:
        """One page in name order (``ns/name`` across namespaces): items, the key of the last
        item when more keys follow (→ continue token), and remainingItemCount (unfiltered only)."""
        out: list[Obj] = []
        namespaces = [ns] if ns is not None else self.namespaces()
        first_ns, first_name = None, None
        if start_after is not None:
            if ns is None:
                first_ns, _, first_name = start_after.partition("/")
            else:
                first_ns, first_name = ns, start_after
        unfiltered = not reqs and not freqs
        for space in namespaces:
            if first_ns is not None and space < first_ns:
                continue
            seq = self._candidates(space, reqs)
            start = 0
            if first_ns is not None and space == first_ns and first_name is not None:
                start = bisect.bisect_right(seq, first_name)
            objs = self.by_ns.get(space, {})
            for i in range(start, len(seq)):
                obj = objs.get(seq[i])
                if obj is None:
                    continue
                md = obj["metadata"]
                if reqs and not labels_match(reqs, md.get("labels")):
                    continue
                if freqs and not fields_match(freqs, obj):
                    continue
                out.append(obj)
                if limit is not None and len(out) >= limit:
                    more_here = i + 1 < len(seq)
                    later = [s for s in namespaces if s > space and self.by_ns.get(s)]
                    if more_here or later:
                        key = seq[i] if ns is not None else f"{space}/{seq[i]}"
                        remaining = None
                        if unfiltered:
                            remaining = (len(seq) - i - 1) + sum(len(self.by_ns[s]) for s in later)
                        return out, key, remaining
                    return out, None, None
        return out, None, None

    def _candidates(self, ns: str, reqs: list[Requirement]) -> list[str]:
        names = self.sorted.get(ns, [])
        idx = self.labels.get(ns, {})
        best: set[str] | None = None
        for r in reqs:
            if r.op not in ("=", "in"):
                continue
            cand: set[str] = set()
            for v in r.values:
                cand |= idx.get((r.key, v), set())
            if best is None or len(cand) < len(best):
                best = cand
        if best is not None and len(best) * 8 < len(names):
            return sorted(best)
        return names
