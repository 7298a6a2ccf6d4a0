"""Container-group names (azure-aci + ACI) and the pod names the Job controller produces.

Sources:
- virtual-kubelet/azure-aci ``pkg/provider/aci.go containerGroupName`` and
  ``pkg/client/client_apis.go CreateContainerGroup``: the group is named ``"%s-%s"`` of the pod's
  namespace and name, with no truncation or escaping.
- ACI naming rule for ``Microsoft.ContainerInstance/containerGroups``: 1–63 characters, lowercase
  letters, digits and hyphens, no leading or trailing hyphen, no two consecutive hyphens
  (Azure "Naming rules and restrictions for Azure resources"; the same rule is spelled out for
  ``containerGroupName`` in the ARM deploymentScripts reference,
  https://learn.microsoft.com/dotnet/api/azure.resourcemanager.resources.models.scriptcontainerconfiguration.containergroupname).
  The exact error code and message ACI returns for a bad name are not documented: the source is
  silent, so the model uses ``InvalidContainerGroupName`` (HTTP 400) with a message of its own.
- kubernetes/kubernetes ``pkg/controller/job/indexed_job_utils.go podGenerateNameWithIndex``:
  Indexed pods get ``generateName`` ``"<job>-<index>-"``, the job part cut so the prefix fits
  ``names.MaxGeneratedNameLength`` (58); NonIndexed pods get ``"<job>-"``
  (``pkg/controller/controller_utils.go getPodsPrefix``). The API server's
  ``staging/src/k8s.io/apiserver/pkg/storage/names/generate.go SimpleNameGenerator`` cuts the
  prefix to 58 and appends 5 characters of ``utilrand.String`` (alphabet
  ``bcdfghjklmnpqrstvwxz2456789``).
"""

from __future__ import annotations

import random
import re

from devtools.standins.virtual_node.errors import Refusal, arm_error

MAX_NAME = 63
MAX_GENERATED_NAME = 58  # names.MaxGeneratedNameLength = 63 - 5
RANDOM_LENGTH = 5
RANDOM_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
_CG_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


def container_group_name(namespace: str, pod_name: str) -> str:
    """``<namespace>-<pod name>``, as azure-aci ``containerGroupName`` formats it."""
    return f"{namespace}-{pod_name}"


def name_refusal(cg_name: str) -> Refusal | None:
    """The ACI naming rule for container groups, or ``None`` if the name is valid."""
    if 1 <= len(cg_name) <= MAX_NAME and _CG_NAME.fullmatch(cg_name) and "--" not in cg_name:
        return None
    return arm_error(
        400,
        "InvalidContainerGroupName",
        f"The container group name '{cg_name}' is invalid. A container group name must be 1 to 63 "
        "characters long, contain only lowercase letters, numbers and hyphens, cannot start or end "
        "with a hyphen, and cannot contain consecutive hyphens.",
    )


def job_pod_prefix(job_name: str, index: int | None) -> str:
    """The ``generateName`` the Job controller sets on a pod of ``job_name`` (``index`` for Indexed)."""
    if index is None:
        return f"{job_name}-"
    suffix = f"-{index}-"
    prefix = job_name + suffix
    if len(prefix) > MAX_GENERATED_NAME:
        prefix = prefix[: MAX_GENERATED_NAME - len(suffix)] + suffix
    return prefix


def pod_generate_name(job_name: str, index: int | None, *, rng: random.Random | None = None) -> str:
    """A pod name the Job controller + API server could give a pod of ``job_name``.

    ``index`` is the completion index of an Indexed Job, ``None`` for NonIndexed. The result is the
    ``generateName`` prefix cut to 58 characters plus 5 random characters (see module docstring).
    """
    prefix = job_pod_prefix(job_name, index)
    pick = (rng or random).choice
    return prefix[:MAX_GENERATED_NAME] + "".join(pick(RANDOM_ALPHABET) for _ in range(RANDOM_LENGTH))
