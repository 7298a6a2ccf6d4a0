"""Which cluster the services talk to, and whether it is ready (the cluster gate).

Bring-your-own-cluster (``VNB_CLUSTER_MODE=kubeconfig``) is always "ready": the kubeconfig
names the cluster. In ``aks`` mode the gate is the bootstrap's, imported lazily so the
management SDKs load only when a cluster has to be found or built.
"""

from __future__ import annotations

import threading

from shared.adapters.kube import Cluster, from_kubeconfig_file
from shared.services.dispatch import ClusterGate, Readiness
from shared.settings import Settings


class KubeconfigGate:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def check(self) -> Readiness:
        s = self._settings
        assert s.kubeconfig
        http = from_kubeconfig_file(s.kubeconfig, context=s.kube_context, timeout=s.kube_timeout_seconds)
        return Readiness(cluster=Cluster(http, s.namespace))


_gates: dict[Settings, ClusterGate] = {}
_lock = threading.Lock()


def gate_for(settings: Settings) -> ClusterGate:
    """The process-wide gate for these settings (its readiness cache lives as long)."""
    with _lock:
        gate = _gates.get(settings)
        if gate is None:
            if settings.cluster_mode == "kubeconfig":
                gate = KubeconfigGate(settings)
            else:
                from shared.services.bootstrap import AksGate

                gate = AksGate(settings)
            _gates[settings] = gate
        return gate


def cluster_for(settings: Settings) -> Cluster | None:
    """The cluster if it is ready now (reconciler, CLI), else None."""
    return gate_for(settings).check().cluster
