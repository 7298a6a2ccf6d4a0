"""Secrets in the Kubernetes stand-in: REST storage (``pkg/registry/core/secret``) and the garbage
collector's rule for dependents (``pkg/controller/garbagecollector``).

Rules, each from its source:
- Validation (``pkg/apis/core/validation ValidateSecret``): the name is a DNS subdomain; every
  ``data`` key matches ``[-._a-zA-Z0-9]+`` and is not ``.``/``..`` (``IsConfigMapKey``); the total
  size is at most 1 MiB (``MaxSecretSize``); ``type`` defaults to ``Opaque``; a
  ``kubernetes.io/dockerconfigjson`` Secret needs the key ``.dockerconfigjson``.
- ``data`` values are base64 on the wire (``[]byte`` in JSON); ``stringData`` is merged into
  ``data`` and dropped on write (``pkg/registry/core/secret/strategy.go`` → ``Canonicalize`` in
  the conversion).
- Owner references (Kubernetes docs "Garbage Collection", "Owners and dependents"): once every
  owner of an object is gone, the GC deletes the dependent (background propagation); an owner
  reference to a uid that does not exist makes the object garbage too.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from typing import Any

from devtools.standins.kube.objects import (
    FieldError,
    Obj,
    Resource,
    already_exists,
    conflict,
    invalid,
    not_found,
    validate_annotations,
    validate_labels,
    validate_name,
)
from devtools.standins.kube.state import ClusterState

SECRETS = Resource("secrets", "", "Secret", "v1")
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
MAX_SECRET_SIZE = 1024 * 1024


class SecretRegistry(ClusterState):
    """create/get/replace/patch/delete/list of Secrets; dependents collected with their owner."""

    secrets_by_key: dict[tuple[str, str], Obj]

    def _secret_errors(self, name: str, body: Obj) -> list[FieldError]:
        meta = body.get("metadata") or {}
        errs = validate_name(name, max_len=253, label=False)
        errs += validate_labels(meta.get("labels"), "metadata.labels")
        errs += validate_annotations(meta.get("annotations"), "metadata.annotations")
        size = 0
        for key, value in (body.get("data") or {}).items():
            if not _KEY.fullmatch(key) or key in (".", ".."):
                errs.append(
                    FieldError(
                        f"data[{key}]",
                        "FieldValueInvalid",
                        "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                    )
                )
                continue
            try:
                size += len(base64.b64decode(value, validate=True))
            except (binascii.Error, TypeError, ValueError):
                errs.append(FieldError(f"data[{key}]", "FieldValueInvalid", "illegal base64 data"))
        if size > MAX_SECRET_SIZE:
            errs.append(
                FieldError("data", "FieldValueTooLong", f"Too long: may not be more than {MAX_SECRET_SIZE} bytes")
            )
        if body.get("type") == "kubernetes.io/dockerconfigjson" and ".dockerconfigjson" not in (body.get("data") or {}):
            errs.append(FieldError("data[.dockerconfigjson]", "FieldValueRequired", "Required value"))
        return errs

    @staticmethod
    def _canonical(body: Obj) -> Obj:
        out = copy.deepcopy(body)
        data = dict(out.get("data") or {})
        for k, v in (out.pop("stringData", None) or {}).items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        out["data"] = data
        out.setdefault("type", "Opaque")
        out["apiVersion"], out["kind"] = "v1", "Secret"
        return out

    def create_secret(self, ns: str, body: Obj) -> Obj:
        self.require_namespace(ns)  # type: ignore[attr-defined]
        body = self._canonical(body)
        meta = body.get("metadata") or {}
        name = str(meta.get("name") or "")
        errs = self._secret_errors(name, body)
        if errs:
            raise invalid(SECRETS, name, errs)
        if (ns, name) in self.secrets_by_key:
            raise already_exists(SECRETS, name)
        md = self._new_meta(name, ns, meta)
        md.pop("generation", None)
        obj = {"apiVersion": "v1", "kind": "Secret", "metadata": md, "type": body["type"], "data": body["data"]}
        self.secrets_by_key[(ns, name)] = obj
        return copy.deepcopy(obj)

    def get_secret(self, ns: str, name: str) -> Obj:
        found = self.secrets_by_key.get((ns, name))
        if found is None:
            raise not_found(SECRETS, name)
        return copy.deepcopy(found)

    def replace_secret(self, ns: str, name: str, body: Obj) -> Obj:
        cur = self.secrets_by_key.get((ns, name))
        if cur is None:
            raise not_found(SECRETS, name)
        body = self._canonical(body)
        meta = body.get("metadata") or {}
        rv = meta.get("resourceVersion")
        if rv is not None and rv != cur["metadata"]["resourceVersion"]:
            raise conflict(SECRETS, name)
        errs = self._secret_errors(name, body)
        if errs:
            raise invalid(SECRETS, name, errs)
        md = cur["metadata"]
        for k in ("labels", "annotations", "ownerReferences"):
            if meta.get(k):
                md[k] = copy.deepcopy(meta[k])
            else:
                md.pop(k, None)
        md["resourceVersion"] = self.next_rv()
        cur["data"], cur["type"] = body["data"], body["type"]
        return copy.deepcopy(cur)

    def delete_secret(self, ns: str, name: str) -> Obj:
        found = self.secrets_by_key.pop((ns, name), None)
        if found is None:
            raise not_found(SECRETS, name)
        self.next_rv()
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "kind": "secrets", "uid": found["metadata"]["uid"]},
        }

    def list_secrets(self, ns: str) -> list[Obj]:
        return [copy.deepcopy(o) for (n, _), o in sorted(self.secrets_by_key.items()) if n == ns]

    def collect_secret_dependents(self) -> None:
        """The GC: delete every Secret all of whose owners are gone (owners are Jobs here)."""
        live = {j["metadata"]["uid"] for ns in self.jobs.namespaces() for j in self.jobs.by_ns[ns].values()}
        for key, obj in list(self.secrets_by_key.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and not any(r.get("uid") in live for r in refs):
                del self.secrets_by_key[key]
                self.next_rv()

    def secret_object(self, ns: str, name: str) -> dict[str, Any] | None:
        """A copy of a stored Secret (the virtual node reading a pull Secret), or None."""
        found = self.secrets_by_key.get((ns, name))
        return copy.deepcopy(found) if found is not None else None

    def secret_data(self, ns: str, name: str) -> dict[str, str] | None:
        """Decoded data of a Secret (the virtual node mounting it), or None when it does not exist."""
        found = self.secrets_by_key.get((ns, name))
        if found is None:
            return None
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (found.get("data") or {}).items()}
