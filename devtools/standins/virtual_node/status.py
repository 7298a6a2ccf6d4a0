"""Pod status from a container group, as azure-aci maps it (``pkg/provider/containergroup_to_pod.go``).

- Phase from the group state (``getPodPhaseFromACIState``): Running → Running, Succeeded →
  Succeeded, Failed/Canceled → Failed, Creating/Repairing/Pending/Accepted → Pending, else Unknown.
  With restart policy Never a group whose containers all exit 0 ends ``Succeeded``, otherwise
  ``Failed`` (ACI "container group states", https://learn.microsoft.com/azure/container-instances/container-state).
- Container state (``aciContainerStateToContainerState``): ``Running`` → running; ``Succeeded`` and
  ``Terminated`` → terminated, reason ``Completed``, **no exit code** (the Go field's zero value, so
  the API shows ``exitCode: 0`` whatever the process returned: azure-aci#417); ``Failed`` and
  ``Canceled`` → terminated with ACI's exit code, reason = the state, message = ``detailStatus``.
  ACI reports an exited container as ``Terminated`` with its exit code (container-state page), so
  the real provider loses every exit code; ``reports_exit_codes=True`` models a provider that
  reports ``Failed`` with the code instead.
- Conditions (``getPodConditionsFromACIState``): only for Running/Succeeded groups — Ready (True
  when every container is Running or Succeeded), Initialized, PodScheduled; none otherwise.
- ``lastState``: ACI has no previous state for a first run; ``pkg/validation ValidateContainer``
  fills in ``Pending``, which maps to ``waiting {reason: Pending, message: Pending}``.
- ``containerID``: ``aci://`` + sha256 of the upper-cased ``<group id>/containers/<name>``
  (``pkg/util/aci_utils.go GetContainerID``); ``imageID`` is empty; ``hostIP`` is the node's IP.
"""

from __future__ import annotations

import hashlib
from typing import Any

from devtools.standins.virtual_node.errors import NODE_RESOURCE_GROUP, SUBSCRIPTION

Obj = dict[str, Any]

PREVIOUS_STATE = {"waiting": {"reason": "Pending", "message": "Pending"}}


def group_id(cg_name: str) -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{NODE_RESOURCE_GROUP}"
        f"/providers/Microsoft.ContainerInstance/containerGroups/{cg_name}"
    )


def container_id(cg_name: str, container: str) -> str:
    digest = hashlib.sha256(f"{group_id(cg_name)}/containers/{container}".upper().encode()).hexdigest()
    return f"aci://{digest}"


def group_state(exit_codes: list[int]) -> str:
    """ACI group state once every container has exited (restart policy Never)."""
    return "Succeeded" if all(code == 0 for code in exit_codes) else "Failed"


def phase_of(state: str) -> str:
    return {
        "Running": "Running",
        "Succeeded": "Succeeded",
        "Failed": "Failed",
        "Canceled": "Failed",
        "Creating": "Pending",
        "Repairing": "Pending",
        "Pending": "Pending",
        "Accepted": "Pending",
    }.get(state, "Unknown")


def conditions(state: str, created: str, last_update: str, all_ready: bool) -> list[Obj]:
    if state not in ("Running", "Succeeded"):
        return []
    return [
        {"type": "Ready", "status": "True" if all_ready else "False", "lastProbeTime": None,
         "lastTransitionTime": last_update if all_ready else created},
        {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": created},
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": created},
    ]  # fmt: skip


def running_state(started: str) -> Obj:
    return {"running": {"startedAt": started}}


def terminated_state(exit_code: int, started: str, finished: str, *, reports_exit_codes: bool) -> tuple[Obj, str]:
    """(Kubernetes container state, ACI container state) for a container that exited."""
    if reports_exit_codes and exit_code != 0:
        state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Failed",
                "message": "Error",
                "startedAt": started,
                "finishedAt": finished,
            }
        }
        return state, "Failed"
    # "Terminated" (or "Succeeded"): reason Completed, ExitCode left at Go's zero value.
    return {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": finished}}, (
        "Terminated"
    )
