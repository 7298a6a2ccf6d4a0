"""The Job controller (kube-controller-manager ``pkg/controller/job``): counts finished pods, writes
Job status and conditions, enforces backoff limits and deadlines, and creates the Job's pods."""

from __future__ import annotations

import copy
import time
import uuid

from devtools.standins.kube.objects import Obj, generate_name, index_ranges
from devtools.standins.kube.state import (
    COMPLETION_INDEX,
    INDEX_FAILURE_COUNT,
    JOB_API_BACKOFF,
    JOB_TRACKING_FINALIZER,
    ClusterState,
    JobState,
    _is_terminal,
    _pod_ready,
)
from devtools.standins.metav1_time import now_rfc3339
from devtools.standins.virtual_node.naming import job_pod_prefix


def _qos(spec: Obj) -> str:
    containers = spec.get("containers") or []
    any_set, guaranteed = False, True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r, lim.get(r)) != lim.get(r):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


class JobController(ClusterState):
    """Syncs dirty Jobs (``_sync_job``); the controller loop in ``cluster`` calls it."""

    def _count_failure(self, st: JobState, pod: Obj, now: float) -> None:
        st.failed += 1
        st.last_failure_mono = now
        idx = self._pod_index(pod)
        if idx >= 0:
            st.index_failures[idx] = st.index_failures.get(idx, 0) + 1
            job = self._job_of(pod)
            limit = (job or {}).get("spec", {}).get("backoffLimitPerIndex")
            if limit is not None and st.index_failures[idx] > limit:
                st.failed_indexes.add(idx)

    def _deadline_passed(self, key: tuple[str, ...]) -> None:
        job = self.jobs.get(key[0], key[1])
        st = self._states.get(key[2])
        if job is not None and st is not None and job["metadata"]["uid"] == key[2] and not self._finished(job):
            st.deadline_hit = True
            self._mark_dirty(key[0], key[1])

    def _condition(self, type_: str, reason: str, message: str) -> Obj:
        now = now_rfc3339()
        return {
            "type": type_,
            "status": "True",
            "lastProbeTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }

    def _sync_job(self, ns: str, name: str) -> None:
        if self.job_controller_paused:
            self._mark_dirty(ns, name)  # synced once the controller runs again
            return
        job = self.jobs.get(ns, name)
        if job is None:
            return
        md, spec = job["metadata"], job["spec"]
        uid = md["uid"]
        st = self._states.setdefault(uid, JobState(uid=uid))
        owned = self._pods_by_owner.setdefault(uid, set())
        if md.get("deletionTimestamp"):
            # A Job being deleted: every pod's tracking finalizer may go (canRemoveFinalizer).
            for pname in sorted(owned):
                pod = self.pods.get(ns, pname)
                if pod is not None:
                    self._remove_finalizer(pod)
            fins = list(md.get("finalizers") or [])
            if "foregroundDeletion" in fins:
                # The garbage collector deletes the dependents and removes the finalizer only once
                # they are gone (garbagecollector.go processDeletingDependentsItem).
                for pname in sorted(owned):
                    self._terminate_pod(ns, pname, grace=None, count_failure=False)
                if any(self.pods.get(ns, p) is not None for p in owned):
                    return
                fins.remove("foregroundDeletion")
            elif "orphan" in fins:
                for pname in sorted(owned):
                    pod = self.pods.get(ns, pname)
                    if pod is not None:
                        pod["metadata"].pop("ownerReferences", None)
                        self._touch(pod)
                fins.remove("orphan")
                owned.clear()
            if fins:
                # Another controller's finalizer: the Job stays Terminating (and its controller
                # creates no pods) until that controller removes it with an update.
                if fins != md.get("finalizers"):
                    md["finalizers"] = fins
                    self._touch(job)
                return
            if uid in self._background_held:
                self._background_held.discard(uid)
                self._gc_owners[uid] = ns
            else:
                self._pods_by_owner.pop(uid, None)
            self._remove_job(ns, name)
            return
        if self._finished(job):
            return
        now = time.monotonic()
        status = job["status"]
        before = copy.deepcopy(status)
        if spec.get("suspend"):
            return
        if "startTime" not in status:
            status["startTime"] = now_rfc3339()
            if spec.get("activeDeadlineSeconds"):
                self._timer(spec["activeDeadlineSeconds"] * self.time_scale, "deadline", ns, name, uid)
        indexed = spec.get("completionMode") == "Indexed"
        per_index = spec.get("backoffLimitPerIndex")
        pods = [p for p in (self.pods.get(ns, n) for n in sorted(owned)) if p is not None]
        for pod in pods:
            puid = pod["metadata"]["uid"]
            if _is_terminal(pod) and puid not in st.counted:
                st.counted.add(puid)
                if pod["status"]["phase"] == "Succeeded":
                    st.succeeded += 1
                    if indexed:
                        st.completed.add(self._pod_index(pod))
                else:
                    self._count_failure(st, pod, now)
        # controller.FilterActivePods: neither finished nor being deleted. CountTerminatingPods:
        # being deleted and not finished (pkg/controller/controller_utils.go).
        active = [p for p in pods if not _is_terminal(p) and not p["metadata"].get("deletionTimestamp")]
        terminating = sum(1 for p in pods if not _is_terminal(p) and p["metadata"].get("deletionTimestamp"))
        conds: list[Obj] = status.setdefault("conditions", [])
        types = {c["type"] for c in conds}
        completions = spec.get("completions")
        if "FailureTarget" in types or "SuccessCriteriaMet" in types:
            # syncJob: an existing FailureTarget / SuccessCriteriaMet is the finish condition
            # (never retracted); deleteActivePods only marks the pods for deletion, and
            # enactJobFinished adds Failed / Complete once status.terminating is 0
            # (job_controller.go, delayTerminalCondition true from 1.31).
            for pod in active:
                self._terminate_pod(ns, pod["metadata"]["name"], grace=None, count_failure="FailureTarget" in types)
            terminating += len(active)
            active = []
        else:
            failure: tuple[str, str] | None = None
            success = False
            if st.deadline_hit:
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
            elif indexed and per_index is not None:
                mfi = spec.get("maxFailedIndexes")
                if mfi is not None and len(st.failed_indexes) > mfi:
                    failure = (
                        "MaxFailedIndexesExceeded",
                        "Job has exceeded the specified maximal number of failed indexes",
                    )
                elif len(st.completed | st.failed_indexes) >= (completions or 0) and not any(
                    self._pod_index(p) not in st.failed_indexes for p in active
                ):
                    if st.failed_indexes:
                        failure = ("FailedIndexes", "Job has failed indexes")
                    else:
                        success = True
            elif st.failed > spec.get("backoffLimit", 6):
                failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            if failure is None and not success:
                if indexed:
                    success = len(st.completed) >= (completions or 0)
                elif completions is not None:
                    success = st.succeeded >= completions and not active
                else:
                    success = st.succeeded > 0 and not active
            if failure is not None:
                # newFailureCondition: FailureTarget first (delayTerminalCondition, 1.31+).
                conds.append(self._condition("FailureTarget", failure[0], failure[1]))
                for pod in active:
                    self._terminate_pod(ns, pod["metadata"]["name"], grace=None, count_failure=True)
                terminating += len(active)
                active = []
            elif success:
                conds.append(
                    self._condition(
                        "SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"
                    )
                )
                for pod in active:
                    self._terminate_pod(ns, pod["metadata"]["name"], grace=None, count_failure=False)
                terminating += len(active)
                active = []
            else:
                active += self._create_pods(job, st, active, now)
        types = {c["type"] for c in conds}
        finishing = "FailureTarget" in types or "SuccessCriteriaMet" in types
        flushed = self._track_and_remove_finalizers(ns, name, st, pods, finishing=finishing)
        if finishing and flushed and terminating == 0 and not (st.uncounted_succeeded or st.uncounted_failed):
            # enactJobFinished: the terminal condition once no pod is uncounted or terminating.
            if "FailureTarget" in types:
                target = next(c for c in conds if c["type"] == "FailureTarget")
                conds.append(self._condition("Failed", target["reason"], target["message"]))
            else:
                met = next(c for c in conds if c["type"] == "SuccessCriteriaMet")
                conds.append(self._condition("Complete", met["reason"], met["message"]))
                status["completionTime"] = now_rfc3339()
            st.finished_mono = now
        st.terminating = terminating
        self._write_status(job, st, active, indexed, per_index)
        if status != before:
            self._touch(job)
            if not self._finished(job):
                self._mark_dirty_batched(ns, name)  # updateJob: a status update, same generation
        if self._finished(job):
            self._schedule_ttl(job)

    def _clean_uncounted(self, st: JobState, pods: list[Obj]) -> None:
        """``cleanUncountedPodsWithoutFinalizers``: a uid whose pod no longer has the tracking
        finalizer (or is gone) leaves ``uncountedTerminatedPods``; the published counters, which
        are the controller's counts minus the uncounted, move by as much."""
        held = {p["metadata"]["uid"] for p in pods if JOB_TRACKING_FINALIZER in (p["metadata"].get("finalizers") or [])}
        st.uncounted_succeeded = [u for u in st.uncounted_succeeded if u in held]
        st.uncounted_failed = [u for u in st.uncounted_failed if u in held]

    def _track_and_remove_finalizers(
        self, ns: str, name: str, st: JobState, pods: list[Obj], *, finishing: bool
    ) -> bool:
        """``trackJobStatusAndRemoveFinalizers`` → ``flushUncountedAndRemoveFinalizers``: each
        finished pod (Succeeded; failed: phase Failed or deleted before it succeeded,
        ``isPodFailed``; every pod once the Job is finishing, ``canRemoveFinalizer``) that still has
        the tracking finalizer is first recorded by uid in ``uncountedTerminatedPods`` (a status
        update), then its finalizer is removed (a pod PATCH), then a second status update moves it
        from the list to ``succeeded``/``failed``. Returns False if that second update failed
        (``job_status_update_faults``): the uids stay in the list, the counters do not move, and the
        Job is synced again after the rate limiter's back-off (``DefaultJobApiBackOff`` 1 s doubling
        to ``MaxJobApiBackOff`` 1 min, ``processNextWorkItem`` → ``AddRateLimited``)."""
        removed: list[Obj] = []
        for pod in pods:
            md = pod["metadata"]
            if JOB_TRACKING_FINALIZER not in (md.get("finalizers") or []):
                continue
            phase = pod["status"].get("phase")
            failed = phase == "Failed" or (bool(md.get("deletionTimestamp")) and phase != "Succeeded")
            if not (finishing or failed or phase == "Succeeded"):
                continue
            uid = md["uid"]
            if phase == "Succeeded":
                if uid not in st.uncounted_succeeded:
                    st.uncounted_succeeded.append(uid)
            elif uid in st.counted and uid not in st.uncounted_failed:
                st.uncounted_failed.append(uid)
            removed.append(pod)
        for pod in removed:
            self._remove_finalizer(pod)
        still = [p for p in pods if self.pods.get(ns, p["metadata"]["name"]) is p]
        before = (list(st.uncounted_succeeded), list(st.uncounted_failed))
        self._clean_uncounted(st, still)
        if before != (st.uncounted_succeeded, st.uncounted_failed) and self.job_status_update_faults > 0:
            st.uncounted_succeeded, st.uncounted_failed = before
            self.job_status_update_faults -= 1
            delay = min(JOB_API_BACKOFF[0] * 2**st.sync_failures, JOB_API_BACKOFF[1])
            st.sync_failures += 1
            self._timer(delay * self.time_scale, "wake", ns, name)
            return False
        st.sync_failures = 0
        return True

    def _write_status(self, job: Obj, st: JobState, active: list[Obj], indexed: bool, per_index: int | None) -> None:
        status = job["status"]
        new: Obj = {}
        if status.get("conditions"):
            new["conditions"] = status["conditions"]
        for k in ("startTime", "completionTime"):
            if k in status:
                new[k] = status[k]
        if active:
            new["active"] = len(active)
        # The published counters leave out the uncounted pods (cleanUncountedPodsWithoutFinalizers).
        if st.succeeded - len(st.uncounted_succeeded) > 0:
            new["succeeded"] = st.succeeded - len(st.uncounted_succeeded)
        if st.failed - len(st.uncounted_failed) > 0:
            new["failed"] = st.failed - len(st.uncounted_failed)
        if indexed and st.completed:
            new["completedIndexes"] = index_ranges(st.completed)
        if per_index is not None:
            new["failedIndexes"] = index_ranges(st.failed_indexes)
        uncounted: Obj = {}
        if st.uncounted_succeeded:
            uncounted["succeeded"] = list(st.uncounted_succeeded)
        if st.uncounted_failed:
            uncounted["failed"] = list(st.uncounted_failed)
        new["uncountedTerminatedPods"] = uncounted
        new["terminating"] = st.terminating  # JobPodReplacementPolicy (beta, on by default in 1.29+)
        new["ready"] = sum(1 for p in active if _pod_ready(p))
        status.clear()
        status.update(new)

    def _create_pods(self, job: Obj, st: JobState, active: list[Obj], now: float) -> list[Obj]:
        spec = job["spec"]
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        parallelism = spec.get("parallelism") or 0
        if self.pod_retry_backoff_seconds > 0 and st.failed > 0:
            # DefaultJobPodFailureBackOff 10 s doubling up to MaxJobPodFailureBackOff 10 min
            # (job_controller.go; backoffRecord.getRemainingTime).
            delay = min(self.pod_retry_backoff_seconds * (2 ** (st.failed - 1)), 600.0) * self.time_scale
            if now < st.last_failure_mono + delay:
                self._timer(st.last_failure_mono + delay - now, "wake", ns, name)
                return []
        created: list[Obj] = []
        if spec.get("completionMode") == "Indexed":
            busy = {self._pod_index(p) for p in active}
            slots = parallelism - len(active)
            for idx in range(spec.get("completions") or 0):
                if slots <= 0:
                    break
                if idx in st.completed or idx in st.failed_indexes or idx in busy:
                    continue
                created.append(self._new_pod(job, st, idx))
                slots -= 1
        else:
            completions = spec.get("completions")
            want = parallelism if completions is None else min(parallelism, completions - st.succeeded)
            for _ in range(max(0, want - len(active))):
                created.append(self._new_pod(job, st, -1))
        return created

    def _new_pod(self, job: Obj, st: JobState, index: int) -> Obj:
        jmd, jspec = job["metadata"], job["spec"]
        ns, jname = jmd["namespace"], jmd["name"]
        tmpl = copy.deepcopy(jspec.get("template") or {})
        tmeta = tmpl.get("metadata") or {}
        spec = tmpl.get("spec") or {}
        labels = dict(tmeta.get("labels") or {})
        annotations = dict(tmeta.get("annotations") or {})
        prefix = job_pod_prefix(jname, index if index >= 0 else None)  # podGenerateNameWithIndex
        if index >= 0:
            labels[COMPLETION_INDEX] = str(index)
            annotations[COMPLETION_INDEX] = str(index)
            if jspec.get("backoffLimitPerIndex") is not None:
                annotations[INDEX_FAILURE_COUNT] = str(st.index_failures.get(index, 0))
            spec.setdefault("hostname", f"{jname}-{index}")
            for c in spec.get("containers") or []:
                env = c.setdefault("env", [])
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                    env.append(
                        {
                            "name": "JOB_COMPLETION_INDEX",
                            "valueFrom": {
                                "fieldRef": {
                                    "apiVersion": "v1",
                                    "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']",
                                }
                            },
                        }
                    )
        pname = generate_name(prefix)
        while self.pods.get(ns, pname) is not None:
            pname = generate_name(prefix)
        md: Obj = {
            "name": pname,
            "generateName": prefix,
            "namespace": ns,
            "uid": str(uuid.uuid4()),
            "resourceVersion": self.next_rv(),
            "creationTimestamp": now_rfc3339(),
            "labels": labels,
            # manageJob: appendJobCompletionFinalizerIfNotFound on the template of every pod it creates.
            "finalizers": [*(tmeta.get("finalizers") or []), JOB_TRACKING_FINALIZER],
        }
        if annotations:
            md["annotations"] = annotations
        md["ownerReferences"] = [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": jname,
                "uid": jmd["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        tols = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(t.get("key") == key and t.get("effect") in (None, "", "NoExecute") for t in tols):
                tols.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
        pod: Obj = {"metadata": md, "spec": spec, "status": {"phase": "Pending", "qosClass": _qos(spec)}}
        self.pods.put(pod)
        self._pods_by_owner.setdefault(jmd["uid"], set()).add(pname)
        st.attempts[index] = st.attempts.get(index, 0) + 1
        self._runtime_attempt[(ns, pname)] = st.attempts[index]
        self._to_schedule[(ns, pname)] = None
        return pod
