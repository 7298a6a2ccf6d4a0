"""kube-apiserver's request handling for the resources the app uses: discovery, list with selectors
and pages, get, create, update, patch, delete with options and pod logs, each turned into a call on
the cluster's registry (``registry``) under the cluster lock."""

from __future__ import annotations

import copy
import json

from devtools.standins.kube.cluster import Cluster
from devtools.standins.kube.objects import (
    JOBS,
    NAMESPACES,
    NODES,
    PODS,
    ApiError,
    Obj,
    Resource,
    bad_request,
    conflict,
    dumps,
    method_not_allowed,
    not_found,
)
from devtools.standins.kube.patches import json_patch, merge_patch, strategic_merge_patch
from devtools.standins.kube.secrets import SECRETS
from devtools.standins.kube.selectors import (
    JOB_FIELDS,
    NAMESPACE_FIELDS,
    NODE_FIELDS,
    POD_FIELDS,
    continue_snapshot,
    decode_continue,
    parse_field_selector,
    parse_label_selector,
)

KUBE_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.2",
    "gitCommit": "a57b6f7709f6c2722b92f07b8b4c48210a51fc40",
    "gitTreeState": "clean",
    "buildDate": "2025-06-17T18:36:08Z",
    "goVersion": "go1.24.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_LIST_KINDS = {
    JOBS: ("JobList", "batch/v1"),
    PODS: ("PodList", "v1"),
    NODES: ("NodeList", "v1"),
    NAMESPACES: ("NamespaceList", "v1"),
}
_FIELDS = {JOBS: JOB_FIELDS, PODS: POD_FIELDS, NODES: NODE_FIELDS, NAMESPACES: NAMESPACE_FIELDS}


def _with_kind(res: Resource, obj: Obj) -> Obj:
    return {"kind": res.kind, "apiVersion": res.api_version, **obj}


class RequestHandlers:
    """``_dispatch``: one request (route handler id, path and query parameters, body) to a response."""

    cluster: Cluster
    port: int

    def _dispatch(
        self, method: str, handler: str, p: dict[str, str], q: dict[str, str], body: bytes, ctype: str
    ) -> tuple[int, bytes, str]:
        c = self.cluster
        if q.get("watch") in ("true", "1"):
            raise bad_request("watch is not supported by the vnode-batch Kubernetes stand-in")
        if handler == "version":
            return 200, dumps(KUBE_VERSION), "application/json"
        if handler == "health":
            return 200, b"ok", "text/plain; charset=utf-8"
        if handler == "api":
            return (
                200,
                dumps(
                    {
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                        ],
                    }
                ),
                "application/json",
            )
        if handler == "apis":
            gv = {"groupVersion": "batch/v1", "version": "v1"}
            return (
                200,
                dumps(
                    {
                        "kind": "APIGroupList",
                        "apiVersion": "v1",
                        "groups": [{"name": "batch", "versions": [gv], "preferredVersion": gv}],
                    }
                ),
                "application/json",
            )
        if handler in ("secrets", "secret"):
            return self._secrets(method, handler, p, body, ctype)
        res = {
            "jobs": JOBS,
            "jobs_all": JOBS,
            "job": JOBS,
            "job_status": JOBS,
            "pods": PODS,
            "pods_all": PODS,
            "pod": PODS,
            "pod_log": PODS,
            "namespaces": NAMESPACES,
            "namespace": NAMESPACES,
            "nodes": NODES,
            "node": NODES,
        }[handler]
        ns = p.get("ns")
        name = p.get("name", "")
        with c.lock:
            if handler in ("jobs", "jobs_all", "pods", "pods_all", "namespaces", "nodes") and method == "GET":
                return 200, self._list(res, ns, q), "application/json"
            if handler == "namespaces" and method == "POST":
                return 201, dumps(_with_kind(NAMESPACES, c.create_namespace(self._json(body, res)))), "application/json"
            if handler == "jobs" and method == "POST":
                assert ns is not None
                obj = c.create_job(ns, self._json(body, res), dry_run=q.get("dryRun") == "All")
                return 201, dumps(_with_kind(JOBS, obj)), "application/json"
            if handler in ("namespace", "node") and method == "GET":
                src = c.namespaces if res is NAMESPACES else c.nodes
                if name not in src:
                    raise not_found(res, name)
                return 200, dumps(_with_kind(res, src[name])), "application/json"
            if handler in ("job", "job_status", "pod"):
                assert ns is not None
                if method == "GET":
                    found = c.table(res).get(ns, name)
                    if found is None:
                        raise not_found(res, name)
                    return 200, dumps(_with_kind(res, found)), "application/json"
                if method == "DELETE" and handler != "job_status":
                    return 200, self._delete(res, ns, name, q, body), "application/json"
                if handler == "job" and method == "PUT":
                    new = self._json(body, res)
                    obj = c.update_job(
                        ns, name, new, expect_rv=(new.get("metadata") or {}).get("resourceVersion"), require_rv=True
                    )
                    return 200, dumps(_with_kind(JOBS, obj)), "application/json"
                if handler == "job" and method == "PATCH":
                    return 200, dumps(_with_kind(JOBS, self._patch_job(ns, name, body, ctype))), "application/json"
            if handler == "pod_log" and method == "GET":
                assert ns is not None
                text = c.pod_log(
                    ns,
                    name,
                    container=q.get("container") or None,
                    tail_lines=self._int_param(q, "tailLines"),
                    limit_bytes=self._int_param(q, "limitBytes"),
                    timestamps=q.get("timestamps") == "true",
                )
                return 200, text.encode(), "text/plain"
        raise method_not_allowed()

    def _secrets(self, method: str, handler: str, p: dict[str, str], body: bytes, ctype: str) -> tuple[int, bytes, str]:
        """Secrets (kube/secrets.py): list, create, get, replace, merge-patch, delete."""
        c, ns, name = self.cluster, p["ns"], p.get("name", "")
        with c.lock:
            if handler == "secrets" and method == "GET":
                items = c.list_secrets(ns)
                meta = {"resourceVersion": str(c.rv)}
                return (
                    200,
                    dumps({"kind": "SecretList", "apiVersion": "v1", "metadata": meta, "items": items}),
                    "application/json",
                )
            if handler == "secrets" and method == "POST":
                return 201, dumps(c.create_secret(ns, self._json(body, SECRETS))), "application/json"
            if handler == "secret" and method == "GET":
                return 200, dumps(c.get_secret(ns, name)), "application/json"
            if handler == "secret" and method == "PUT":
                return 200, dumps(c.replace_secret(ns, name, self._json(body, SECRETS))), "application/json"
            if handler == "secret" and method == "PATCH":
                if ctype.split(";", maxsplit=1)[0].strip().lower() != "application/merge-patch+json":
                    raise ApiError(415, "the stand-in patches Secrets with application/merge-patch+json only")
                try:
                    patch = json.loads(body or b"null")
                except ValueError as e:
                    raise bad_request(f"error decoding patch: {e}") from e
                return (
                    200,
                    dumps(c.replace_secret(ns, name, merge_patch(c.get_secret(ns, name), patch))),
                    "application/json",
                )
            if handler == "secret" and method == "DELETE":
                return 200, dumps(c.delete_secret(ns, name)), "application/json"
        raise method_not_allowed()

    @staticmethod
    def _int_param(q: dict[str, str], key: str) -> int | None:
        if key not in q or q[key] == "":
            return None
        try:
            return int(q[key])
        except ValueError as e:
            raise bad_request(f"invalid value for {key}: {q[key]!r}") from e

    @staticmethod
    def _json(body: bytes, res: Resource) -> Obj:
        try:
            data = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as e:
            raise bad_request(
                f'{res.kind} in version "{res.api_version.split("/")[-1]}" cannot be handled as a {res.kind}: {e}'
            ) from e
        if not isinstance(data, dict):
            raise bad_request(
                f'{res.kind} in version "{res.api_version.split("/")[-1]}" cannot be handled as a {res.kind}: the body must be a JSON object'
            )
        if data.get("apiVersion") not in (None, res.api_version):
            raise bad_request(
                f"the API version in the data ({data['apiVersion']}) does not match the expected API version ({res.api_version})"
            )
        if data.get("kind") not in (None, res.kind):
            raise bad_request(f"the kind in the data ({data['kind']}) does not match the expected kind ({res.kind})")
        return data

    def _list(self, res: Resource, ns: str | None, q: dict[str, str]) -> bytes:
        c = self.cluster
        reqs = parse_label_selector(q.get("labelSelector"))
        freqs = parse_field_selector(q.get("fieldSelector"), _FIELDS[res], res.kind, res.api_version)
        limit = self._int_param(q, "limit")
        if limit is not None and limit <= 0:
            limit = None
        start = decode_continue(q["continue"]) if q.get("continue") else None
        snapshot = continue_snapshot(q["continue"]) if q.get("continue") else None
        items, token, remaining = c.list_objects(res, ns, reqs, freqs, start, limit, snapshot=snapshot)
        meta: Obj = {"resourceVersion": str(c.rv)}
        if token:
            meta["continue"] = token
            if remaining is not None:
                meta["remainingItemCount"] = remaining
        kind, api_version = _LIST_KINDS[res]
        return dumps({"kind": kind, "apiVersion": api_version, "metadata": meta, "items": items})

    def _delete(self, res: Resource, ns: str, name: str, q: dict[str, str], body: bytes) -> bytes:
        opts: Obj = {}
        if body.strip():
            try:
                parsed = json.loads(body)
            except ValueError as e:
                raise bad_request(f"invalid DeleteOptions: {e}") from e
            if isinstance(parsed, dict):
                opts = parsed
        policy = q.get("propagationPolicy") or opts.get("propagationPolicy")
        orphan = q.get("orphanDependents", opts.get("orphanDependents"))
        if policy is None and orphan is not None:
            policy = "Orphan" if str(orphan).lower() == "true" else "Background"
        pre = opts.get("preconditions")
        if res is JOBS:
            result = self.cluster.delete_job(ns, name, policy=policy, preconditions=pre)
            return dumps(result if result.get("kind") == "Status" else _with_kind(JOBS, result))
        grace = self._int_param(q, "gracePeriodSeconds")
        if grace is None and opts.get("gracePeriodSeconds") is not None:
            grace = int(opts["gracePeriodSeconds"])
        return dumps(_with_kind(PODS, self.cluster.delete_pod(ns, name, grace=grace, preconditions=pre)))

    def _patch_job(self, ns: str, name: str, body: bytes, ctype: str) -> Obj:
        cur = self.cluster.jobs.get(ns, name)
        if cur is None:
            raise not_found(JOBS, name)
        try:
            patch = json.loads(body or b"null")
        except ValueError as e:
            raise bad_request(f"error decoding patch: {e}") from e
        kind = ctype.split(";", maxsplit=1)[0].strip().lower()
        base = copy.deepcopy(_with_kind(JOBS, cur))
        if kind == "application/json-patch+json":
            patched = json_patch(base, patch)
        elif kind == "application/merge-patch+json":
            patched = merge_patch(base, patch)
        elif kind == "application/strategic-merge-patch+json":
            patched = strategic_merge_patch(base, patch)
        else:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {kind or 'none'})",
            )
        if not isinstance(patched, dict):
            raise bad_request("the patch did not produce an object")
        new_rv = (patched.get("metadata") or {}).get("resourceVersion")
        if new_rv is not None and new_rv != cur["metadata"]["resourceVersion"]:
            raise conflict(JOBS, name)
        return self.cluster.update_job(ns, name, patched, expect_rv=None, require_rv=False)
