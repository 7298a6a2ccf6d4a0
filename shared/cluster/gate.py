"""Which cluster the services talk to, and whether it is ready (the cluster gate).

Bring-your-own-cluster (``VNB_CLUSTER_MODE=kubeconfig``) is always "ready": the kubeconfig
names the cluster. In ``aks`` mode the gate is the bootstrap's, imported lazily so the
management SDKs load only when a cluster has to be found or built.
"""

from __future__ import annotations

import functools
import threading

from shared.adapters.kube import Cluster, from_kubeconfig_file
from shared.cluster.readiness import ClusterGate, Readiness
from shared.config.settings import Settings


class KubeconfigGate:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def check(self) -> Readiness:
        s = self._settings
        assert s.kubeconfig
        http = from_kubeconfig_file(s.kubeconfig, context=s.kube_context, timeout=s.kube_timeout_seconds)
        return Readiness(cluster=Cluster(http, s.namespace))


_lock = threading.Lock()


def gate_for(settings: Settings) -> ClusterGate:
    """The process-wide gate for these settings (its readiness cache lives as long).

    Built under a lock: concurrent first invocations must share one gate, so that one
    bootstrap evaluation runs per process at a time.
    """
    with _lock:
        return _gate(settings)


@functools.cache
def _gate(settings: Settings) -> ClusterGate:
    if settings.cluster_mode == "kubeconfig":
        return KubeconfigGate(settings)
    from shared.cluster.bootstrap import AksGate  # keeps azure.mgmt off the cold path

    if settings.idle_stop_minutes is None:
        return AksGate(settings)
    from shared.cluster.idle_gate import IdleGate
    from shared.cluster.power_store import power_store_for

    return IdleGate(settings, inner=AksGate(settings), store=power_store_for(settings))


def cluster_for(settings: Settings) -> Cluster | None:
    """The cluster if it is ready now (reconciler, CLI), else None."""
    return gate_for(settings).check().cluster
