"""Stop and start of a managed cluster in the ARM stand-in (the idle stop's ARM side).

``ArmStandIn`` (``standin.py``) routes ``POST .../managedClusters/{name}/stop`` and ``.../start``
here (``Power._power_action``). Rules, each with its source:

* Both are long-running POSTs answering ``202 Accepted`` with a ``Location`` header to poll,
  or ``204 No Content`` (azure-rest-api-specs
  ``specification/containerservice/resource-manager/Microsoft.ContainerService/aks/stable/2025-10-01/``
  ``managedClusters.json`` operations ``ManagedClusters_Stop`` / ``ManagedClusters_Start``,
  ``x-ms-long-running-operation: true``; examples ``ManagedClustersStop.json``,
  ``ManagedClustersStart.json``). The spec does not say when 204 is used; the stand-in uses it
  for "already in that power state" (an inference: UNVERIFIED against Azure).
* While the operation runs, the cluster's ``provisioningState`` is ``Stopping`` / ``Starting``;
  when it ends it is ``Succeeded`` and ``properties.powerState.code`` is ``Stopped`` /
  ``Running``, on the cluster and on each agent pool (learn.microsoft.com/azure/aks/start-stop-cluster
  and .../start-stop-nodepools: "If provisioningState shows Stopping, the node pool is still
  stopping"; powerState ``{"code": "Stopped"}``).
* Stopping "stops the control plane and agent nodes entirely, while maintaining all object and
  cluster state. A cluster does not accrue charges while it is stopped" (the operation's
  description in the spec). The stand-in calls ``on_power_changed("Stopped"|"Running")`` when
  an operation completes, before it reports Succeeded; tests wire it to the Kubernetes
  stand-in (API server gone while stopped, virtual node back when started).
* Any write while another operation runs on the cluster is refused with 409
  ``OperationNotAllowed``: "Operation is not allowed: Another operation (Stopping) is in
  progress, please wait for it to finish before starting a new operation. See
  https://aka.ms/aks-pending-operation for more details" (text as reported from AKS in
  Azure/azure-workload-identity issue #417 and Azure/terraform-azurerm-avm-ptn-aks-production
  PR #25). The same refusal covers PUTs during a stop/start (``ArmStandIn._cluster_put``
  already refuses while ``_cluster_ops`` holds a running operation).
* Authorization: ``Microsoft.ContainerService/managedClusters/stop/action`` and
  ``.../start/action`` on the cluster (AKS resource provider operations).
* What AKS does with a PUT on a cluster that is *stopped* (not stopping) is not modelled: the
  sources read are silent; the app never sends one (the bootstrap starts a stopped cluster first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from devtools.standins.arm.catalog import ArmError
from devtools.standins.arm.common import _Ctx, _key, _Result

if TYPE_CHECKING:
    from devtools.standins.arm.operations import _Op

STATE_DURING = {"stop": "Stopping", "start": "Starting"}
POWER_AFTER = {"stop": "Stopped", "start": "Running"}


def pending_conflict(op: _Op) -> ArmError:
    """409 OperationNotAllowed for a write while ``op`` runs (AKS's wording, see the module docstring)."""
    state = STATE_DURING.get(op.kind) or op.kind.capitalize()
    return ArmError(
        409,
        "OperationNotAllowed",
        f"Operation is not allowed: Another operation ({state}) is in progress, please wait for it to finish "
        "before starting a new operation. See https://aka.ms/aks-pending-operation for more details",
    )


def power_of(cluster: dict[str, Any]) -> str:
    return str(((cluster.get("properties") or {}).get("powerState") or {}).get("code") or "Running")


def _set_power(cluster: dict[str, Any], provisioning: str, power: str | None) -> None:
    props = cluster["properties"]
    props["provisioningState"] = provisioning
    if power is not None:
        props["powerState"] = {"code": power}
    for pool in props.get("agentPoolProfiles") or []:
        pool["provisioningState"] = provisioning
        if power is not None:
            pool["powerState"] = {"code": power}


class Power:
    """Stop and start of a managed cluster (the routes call ``_power_action``)."""

    def _power_action(self, ctx: _Ctx, kind: str) -> _Result:
        """``POST .../managedClusters/{name}/stop`` (kind ``stop``) or ``/start`` (kind ``start``)."""
        with self._lock:
            cluster = self._cluster(ctx.g)  # 404 ResourceNotFound when absent
            key = _key(cluster["id"])
            running = self._in_progress(key)
            if running is not None:
                raise pending_conflict(running)
            if cluster["properties"].get("provisioningState") not in ("Succeeded", None):
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Operation is not allowed while the cluster is in provisioning state "
                    f"{cluster['properties'].get('provisioningState')}.",
                )
            if power_of(cluster) == POWER_AFTER[kind]:
                return 204, {}, None
            _set_power(cluster, STATE_DURING[kind], None)
            seconds = self.cluster_stop_seconds if kind == "stop" else self.cluster_start_seconds
            op = self._new_op("Microsoft.ContainerService", kind, cluster["id"], seconds, self._power_finish(key, kind))
            self._cluster_ops[key] = op.id
            return 202, self._lro_headers(op, ctx.params.get("api-version")), None

    def _power_finish(
        self, key: str, kind: str
    ) -> Callable[[], tuple[dict[str, Any] | None, list[Callable[[], None]]]]:
        def complete() -> tuple[dict[str, Any] | None, list[Callable[[], None]]]:
            cluster = self._clusters.get(key)
            if cluster is None:
                return None, []
            power = POWER_AFTER[kind]
            _set_power(cluster, "Succeeded", power)
            self.power_transitions.append((cluster["name"], power))
            hook = self.on_power_changed
            return None, ([lambda: hook(power)] if hook is not None else [])

        return complete
