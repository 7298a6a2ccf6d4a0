"""kube-apiserver's REST storage for Namespaces, Jobs and Pods (``pkg/registry``): defaulting,
validation, generated selectors, optimistic concurrency and delete options. What a write request
does to the store before any controller sees it."""

from __future__ import annotations

import copy

from devtools.standins.kube.objects import (
    JOBS,
    NAMESPACES,
    PODS,
    FieldError,
    Obj,
    already_exists,
    bad_request,
    conflict,
    generate_name,
    invalid,
    not_found,
    validate_annotations,
    validate_labels,
    validate_name,
)
from devtools.standins.kube.state import (
    CONTROLLER_UID,
    JOB_NAME,
    ClusterState,
    JobState,
)
from devtools.standins.metav1_time import now_rfc3339

MAX_INT32 = 2147483647


def _container_defaults(c: Obj) -> None:
    image = c.get("image") or ""
    if "imagePullPolicy" not in c:
        tag = image.rsplit("/", 1)[-1]
        c["imagePullPolicy"] = (
            "Always" if (":" not in tag and "@" not in image) or tag.endswith(":latest") else "IfNotPresent"
        )
    c.setdefault("resources", {})
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")


def _pod_spec_defaults(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            _container_defaults(c)
    for c in spec.get("initContainers") or []:
        if isinstance(c, dict):
            _container_defaults(c)


class Registry(ClusterState):
    """Create, update and delete as the API server's registry does them (callers hold ``lock``)."""

    # ------------------------------------------------------------------ namespaces

    def create_namespace(self, body: Obj) -> Obj:
        meta = body.get("metadata") or {}
        name = meta.get("name") or (generate_name(meta["generateName"]) if meta.get("generateName") else "")
        errs = validate_name(name, max_len=63, label=True) + validate_labels(meta.get("labels"), "metadata.labels")
        if errs:
            raise invalid(NAMESPACES, str(name), errs)
        if name in self.namespaces:
            raise already_exists(NAMESPACES, name)
        md = self._new_meta(name, None, meta)
        md.pop("generation", None)
        md.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj = {"metadata": md, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        self.namespaces[name] = obj
        return obj

    def require_namespace(self, ns: str) -> None:
        if ns not in self.namespaces:
            raise not_found(NAMESPACES, ns)

    # ------------------------------------------------------------------ jobs: create / update / delete

    def create_job(self, ns: str, body: Obj, *, dry_run: bool = False) -> Obj:
        meta = body.get("metadata") or {}
        if not isinstance(meta, dict):
            raise bad_request('Job in version "v1" cannot be handled as a Job: metadata must be an object')
        if meta.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        self.require_namespace(ns)
        name = meta.get("name") or (generate_name(meta["generateName"]) if meta.get("generateName") else "")
        spec = copy.deepcopy(body.get("spec") or {})
        errs = (
            validate_name(name, max_len=63)
            + validate_labels(meta.get("labels"), "metadata.labels")
            + validate_annotations(meta.get("annotations"), "metadata.annotations")
        )
        errs += self._validate_job_spec(spec, user_create=True)
        if errs:
            raise invalid(JOBS, str(name), errs)
        while not meta.get("name") and self.jobs.get(ns, name) is not None:
            name = generate_name(meta["generateName"])
        if self.jobs.get(ns, name) is not None:
            raise already_exists(JOBS, name)
        md = self._new_meta(name, ns, meta)
        uid = md["uid"]
        # batch/v1 defaulting, then the strategy's generated selector and labels
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
            spec["parallelism"] = 1
        elif spec.get("parallelism") is None:
            spec["parallelism"] = 1
        spec.setdefault("completionMode", "NonIndexed")
        if "backoffLimit" not in spec:
            spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
        spec.setdefault("manualSelector", None)
        if spec.get("manualSelector") is None:
            spec.pop("manualSelector", None)
        tmpl = spec.setdefault("template", {})
        tmeta = tmpl.setdefault("metadata", {})
        user_template_labels = tmeta.get("labels")
        tlabels = dict(user_template_labels or {})
        if not spec.get("manualSelector"):
            spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
            tlabels.update({CONTROLLER_UID: uid, JOB_NAME: name, "controller-uid": uid, "job-name": name})
        tmeta["labels"] = tlabels
        _pod_spec_defaults(tmpl.setdefault("spec", {}))
        if not md.get("labels") and user_template_labels is not None:
            md["labels"] = dict(tlabels)
        ordered_spec = {
            k: spec[k]
            for k in (
                "parallelism",
                "completions",
                "activeDeadlineSeconds",
                "backoffLimit",
                "backoffLimitPerIndex",
                "maxFailedIndexes",
                "selector",
                "manualSelector",
                "template",
            )
            if k in spec
        }
        ordered_spec.update({k: v for k, v in spec.items() if k not in ordered_spec})
        obj: Obj = {"metadata": md, "spec": ordered_spec, "status": {}}
        if dry_run:
            md.pop("uid", None)
            return obj
        self.jobs.put(obj)
        self._states[uid] = JobState(uid=uid)
        self._pods_by_owner.setdefault(uid, set())
        self._mark_dirty(ns, name)
        return obj

    def _validate_job_spec(self, spec: Obj, *, user_create: bool) -> list[FieldError]:
        errs: list[FieldError] = []
        for key in (
            "parallelism",
            "completions",
            "backoffLimit",
            "backoffLimitPerIndex",
            "maxFailedIndexes",
            "ttlSecondsAfterFinished",
            "activeDeadlineSeconds",
        ):
            v = spec.get(key)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int):
                raise bad_request(
                    f'Job in version "v1" cannot be handled as a Job: json: cannot unmarshal {type(v).__name__} into Go struct field JobSpec.spec.{key} of type int32'
                )
            if key == "activeDeadlineSeconds" and v <= 0:
                errs.append(
                    FieldError(
                        f"spec.{key}", "FieldValueInvalid", f"Invalid value: {v}: must be greater than or equal to 1"
                    )
                )
            elif v < 0:
                errs.append(
                    FieldError(
                        f"spec.{key}", "FieldValueInvalid", f"Invalid value: {v}: must be greater than or equal to 0"
                    )
                )
        mode = spec.get("completionMode") or "NonIndexed"
        if mode not in ("NonIndexed", "Indexed"):
            errs.append(
                FieldError(
                    "spec.completionMode",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{mode}": supported values: "NonIndexed", "Indexed"',
                )
            )
        if mode == "Indexed" and spec.get("completions") is None:
            errs.append(
                FieldError("spec.completions", "FieldValueRequired", "Required value: when completion mode is Indexed")
            )
        if spec.get("backoffLimitPerIndex") is not None and mode != "Indexed":
            errs.append(
                FieldError(
                    "spec.backoffLimitPerIndex", "FieldValueForbidden", "Forbidden: requires indexed completion mode"
                )
            )
        if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
            errs.append(
                FieldError(
                    "spec.backoffLimitPerIndex",
                    "FieldValueRequired",
                    "Required value: when maxFailedIndexes is specified",
                )
            )
        if user_create and spec.get("selector") is not None and not spec.get("manualSelector"):
            errs.append(
                FieldError(
                    "spec.selector",
                    "FieldValueInvalid",
                    f"Invalid value: {spec['selector']!r}: `selector` not auto-generated",
                )
            )
        tmpl = spec.get("template")
        if not isinstance(tmpl, dict):
            errs.append(FieldError("spec.template.spec.containers", "FieldValueRequired", "Required value"))
            return errs
        errs += validate_labels((tmpl.get("metadata") or {}).get("labels"), "spec.template.metadata.labels")
        pspec = tmpl.get("spec") or {}
        containers = pspec.get("containers")
        if not containers:
            errs.append(FieldError("spec.template.spec.containers", "FieldValueRequired", "Required value"))
        else:
            seen: set[str] = set()
            for i, c in enumerate(containers):
                if not isinstance(c, dict):
                    errs.append(
                        FieldError(
                            f"spec.template.spec.containers[{i}]",
                            "FieldValueInvalid",
                            "Invalid value: must be an object",
                        )
                    )
                    continue
                errs += (
                    validate_name(
                        c.get("name"), max_len=63, label=True, path=f"spec.template.spec.containers[{i}].name"
                    )
                    if c.get("name")
                    else [
                        FieldError(f"spec.template.spec.containers[{i}].name", "FieldValueRequired", "Required value")
                    ]
                )
                if c.get("name") in seen:
                    errs.append(
                        FieldError(
                            f"spec.template.spec.containers[{i}].name",
                            "FieldValueDuplicate",
                            f'Duplicate value: "{c.get("name")}"',
                        )
                    )
                seen.add(str(c.get("name")))
                if not c.get("image") or not str(c.get("image")).strip():
                    errs.append(
                        FieldError(f"spec.template.spec.containers[{i}].image", "FieldValueRequired", "Required value")
                    )
        restart = pspec.get("restartPolicy") or "Always"
        if restart not in ("Never", "OnFailure"):
            errs.append(
                FieldError(
                    "spec.template.spec.restartPolicy",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{restart}": supported values: "OnFailure", "Never"',
                )
            )
        return errs

    def update_job(self, ns: str, name: str, new: Obj, *, expect_rv: str | None, require_rv: bool) -> Obj:
        """PUT and PATCH end here: optimistic concurrency, immutability, generation."""
        cur = self.jobs.get(ns, name)
        if cur is None:
            raise not_found(JOBS, name)
        nmd = new.get("metadata") or {}
        if not isinstance(nmd, dict):
            raise bad_request("metadata must be an object")
        if nmd.get("name") not in (None, name):
            raise bad_request(f"the name of the object ({nmd.get('name')}) does not match the name on the URL ({name})")
        if nmd.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if require_rv and not expect_rv:
            raise invalid(
                JOBS,
                name,
                [
                    FieldError(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        if expect_rv is not None and expect_rv != cur["metadata"]["resourceVersion"]:
            raise conflict(JOBS, name)
        if nmd.get("uid") not in (None, cur["metadata"]["uid"]):
            raise conflict(
                JOBS,
                name,
                f"Precondition failed: UID in precondition: {nmd.get('uid')}, UID in object meta: {cur['metadata']['uid']}",
            )
        spec = new.get("spec") or {}
        errs = validate_labels(nmd.get("labels"), "metadata.labels") + validate_annotations(
            nmd.get("annotations"), "metadata.annotations"
        )
        errs += self._validate_job_spec(spec, user_create=False)
        old_spec = cur["spec"]
        for key in (
            "selector",
            "completionMode",
            "template",
            "podFailurePolicy",
            "successPolicy",
            "backoffLimitPerIndex",
        ):
            if key == "template" and old_spec.get("suspend"):
                continue
            if spec.get(key) != old_spec.get(key):
                errs.append(
                    FieldError(
                        f"spec.{key}", "FieldValueInvalid", f"Invalid value: {spec.get(key)!r}: field is immutable"
                    )
                )
        if spec.get("completions") != old_spec.get("completions") and not (
            spec.get("completionMode") == "Indexed" and spec.get("completions") == spec.get("parallelism")
        ):
            errs.append(
                FieldError(
                    "spec.completions",
                    "FieldValueInvalid",
                    f"Invalid value: {spec.get('completions')}: field is immutable",
                )
            )
        if errs:
            raise invalid(JOBS, name, errs)
        md = dict(cur["metadata"])  # server-owned fields win
        for k in ("labels", "annotations", "finalizers", "ownerReferences"):
            if nmd.get(k):
                md[k] = copy.deepcopy(nmd[k])
            else:
                md.pop(k, None)
        obj: Obj = {"metadata": md, "spec": copy.deepcopy(spec), "status": cur["status"]}
        if obj["spec"] != old_spec:
            md["generation"] = int(md.get("generation", 1)) + 1
        if obj["metadata"] == cur["metadata"] and obj["spec"] == old_spec:
            return cur  # no-op updates do not bump the resourceVersion, as in etcd3 storage
        md["resourceVersion"] = self.next_rv()
        self.jobs.put(obj)
        if md.get("deletionTimestamp"):
            self._mark_dirty(ns, name)  # a finalizer may just have been removed: finish the deletion
        elif self._finished(obj):
            self._schedule_ttl(obj)
        else:
            self._mark_dirty(ns, name)
        return obj

    def delete_job(self, ns: str, name: str, *, policy: str | None, preconditions: Obj | None) -> Obj:
        job = self.jobs.get(ns, name)
        if job is None:
            raise not_found(JOBS, name)
        md = job["metadata"]
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != md["uid"]:
            raise conflict(
                JOBS, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {md['uid']}"
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != md["resourceVersion"]:
            raise conflict(
                JOBS,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, ResourceVersion in object meta: {md['resourceVersion']}",
            )
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise invalid(
                JOBS,
                name,
                [
                    FieldError(
                        "propagationPolicy",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
                    )
                ],
            )
        policy = policy or "Orphan"  # batch/v1 Jobs orphan their pods by default
        if md.get("deletionTimestamp"):
            return job
        if policy == "Background" and md.get("finalizers"):
            # Finalizers hold the object: it is only marked (Terminating) and stays readable until
            # their controllers remove them; its pods are collected once it is really gone.
            md["deletionTimestamp"] = now_rfc3339()
            md["deletionGracePeriodSeconds"] = 0
            self._background_held.add(md["uid"])
            self._touch(job)
            return job
        if policy == "Background":
            self._remove_job(ns, name)
            self._gc_owners[md["uid"]] = ns
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "group": "batch", "kind": "jobs", "uid": md["uid"]},
            }
        self._mark_for_deletion(job, "foregroundDeletion" if policy == "Foreground" else "orphan")
        return job

    # ------------------------------------------------------------------ pods

    def delete_pod(self, ns: str, name: str, *, grace: int | None, preconditions: Obj | None) -> Obj:
        pod = self.pods.get(ns, name)
        if pod is None:
            raise not_found(PODS, name)
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != pod["metadata"]["uid"]:
            raise conflict(
                PODS,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {pod['metadata']['uid']}",
            )
        out = self._terminate_pod(ns, name, grace=grace, count_failure=True)
        assert out is not None
        return out
