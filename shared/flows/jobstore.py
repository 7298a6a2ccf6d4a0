"""The Kubernetes calls a reconcile pass makes: the ``JobStore`` protocol (unit tests give an
in-memory one) and ``KubeJobs`` over the Cluster adapter (the app), with the label selectors of
the app's unreported and reported Jobs (``shared.flows.reconcile``; the idle policy and the
CLI use them too)."""

from __future__ import annotations

from typing import Any, Protocol

from shared.adapters.kube import Cluster, Page
from shared.base.conventions import ANN_REPORTED_AT, LABEL_STATE, MANAGED_BY, MANAGER, STATE_REPORTED, STATE_UNREPORTED

SELECT_UNREPORTED = f"{MANAGED_BY}={MANAGER},{LABEL_STATE}={STATE_UNREPORTED}"
SELECT_REPORTED = f"{MANAGED_BY}={MANAGER},{LABEL_STATE}={STATE_REPORTED}"


class JobStore(Protocol):
    """The Kubernetes calls a pass makes (``KubeJobs`` over the Cluster adapter in the app)."""

    def list_jobs(self, *, label_selector: str, limit: int, continue_token: str | None = None) -> Page: ...

    def list_pods(self, *, label_selector: str) -> list[dict[str, Any]]: ...

    def pod_log(self, pod: str, *, tail_lines: int, limit_bytes: int, container: str | None = None) -> str | None: ...

    def get_job(self, name: str) -> dict[str, Any] | None: ...

    def annotate_job(self, name: str, *, annotations: dict[str, str], resource_version: str) -> dict[str, Any]: ...

    def mark_reported(
        self, name: str, *, reported_at: str, finalizers: list[str], resource_version: str
    ) -> dict[str, Any]: ...

    def delete_job(self, name: str, *, propagation: str = "Background") -> bool: ...

    def delete_pod(self, name: str) -> bool: ...

    def get_secret(self, name: str) -> dict[str, Any] | None: ...


class KubeJobs:
    """``JobStore`` over the Cluster adapter."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def list_jobs(self, *, label_selector: str, limit: int, continue_token: str | None = None) -> Page:
        return self._cluster.list_jobs(label_selector=label_selector, limit=limit, continue_token=continue_token)

    def list_pods(self, *, label_selector: str) -> list[dict[str, Any]]:
        return self._cluster.list_pods(label_selector=label_selector)

    def pod_log(self, pod: str, *, tail_lines: int, limit_bytes: int, container: str | None = None) -> str | None:
        return self._cluster.pod_log(pod, tail_lines=tail_lines, limit_bytes=limit_bytes, container=container)

    def get_job(self, name: str) -> dict[str, Any] | None:
        return self._cluster.get_job(name)

    def get_secret(self, name: str) -> dict[str, Any] | None:
        return self._cluster.get_secret(name)

    def annotate_job(self, name: str, *, annotations: dict[str, str], resource_version: str) -> dict[str, Any]:
        return self._cluster.patch_job_metadata(name, annotations=dict(annotations), resource_version=resource_version)

    def mark_reported(
        self, name: str, *, reported_at: str, finalizers: list[str], resource_version: str
    ) -> dict[str, Any]:
        return self._cluster.patch_job_metadata(
            name,
            labels={LABEL_STATE: STATE_REPORTED},
            annotations={ANN_REPORTED_AT: reported_at},
            finalizers=finalizers,
            resource_version=resource_version,
        )

    def delete_job(self, name: str, *, propagation: str = "Background") -> bool:
        return self._cluster.delete_job(name, propagation=propagation)

    def delete_pod(self, name: str) -> bool:
        return self._cluster.delete_pod(name)
