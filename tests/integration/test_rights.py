"""docs/deploy.md's rights table end to end: the app, with exactly the rights infra/app/cluster-rbac.bicep
gives it (deployed into the ARM stand-in, which enforces role definitions and ABAC conditions), builds
the cluster, gives up its bootstrap-only roles, and afterwards can run (and idle-stop) the cluster but
not widen its rights; a cluster deleted later is reported with the fix, and `azd provision` (deploying
the template again) lets it rebuild."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
import requests

from devtools.tls import shared_ca
from shared.adapters.arm import ArmAdapter, ArmCallFailed
from shared.cluster import roles
from tests.infra.cluster_rights import STEADY_STATE, deploy
from tests.integration.bootstrap_fixtures import *  # noqa: F403
from tests.integration.bootstrap_fixtures import NS, RG, AksWorld, drive

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DEPLOYER = "66666666-6666-6666-6666-666666666666"


def _world(make_aks: Callable[..., AksWorld]) -> AksWorld:
    aks = make_aks(app_rights="assigned")
    aks.arm.register_principal(DEPLOYER, principal_type="User")
    aks.arm.grant(DEPLOYER, f"/subscriptions/{aks.arm.subscription_id}", ["*"])  # Owner, as `azd` runs
    deploy(aks.arm, aks.arm.app_principal_id, _rg_id(aks))
    return aks


def _rg_id(aks: AksWorld) -> str:
    return f"/subscriptions/{aks.arm.subscription_id}/resourceGroups/{RG}"


def _held(aks: AksWorld) -> dict[str, str]:
    """The app's role assignments: role GUID -> scope (the custom role as STEADY_STATE)."""
    out = {}
    for a in aks.arm.role_assignments():
        props = a["properties"]
        if props["principalId"] == aks.arm.app_principal_id:
            role = props["roleDefinitionId"].rsplit("/", 1)[-1]
            out[role if role in roles.__dict__.values() else STEADY_STATE] = props["scope"]
    return out


def _adapter(aks: AksWorld) -> ArmAdapter:
    return ArmAdapter(subscription_id=aks.arm.subscription_id, endpoint=aks.arm.url)


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_bootstrap_gives_up_its_rights_and_cannot_widen_them_after(make_aks: Callable[..., AksWorld]) -> None:
    aks = _world(make_aks)
    assert set(_held(aks)) == {*roles.BOOTSTRAP_ONLY_ROLES, STEADY_STATE}

    readiness, reasons = drive(aks.gate())
    assert readiness.cluster is not None, reasons

    # What the app holds now: the steady-state role on the group, RBAC Writer on its namespace. The
    # grants it made to the cluster's and the addon's identities stay.
    assert _held(aks) == {STEADY_STATE: _rg_id(aks), roles.AKS_RBAC_WRITER: f"{aks.cluster_id}/namespaces/{NS}"}
    network_grants = [
        a for a in aks.arm.role_assignments() if a["properties"]["roleDefinitionId"].endswith(roles.NETWORK_CONTRIBUTOR)
    ]
    assert len(network_grants) == 2
    deletes = [r for r in aks.arm.requests if r.method == "DELETE"]
    assert [r.status for r in deletes] == [200, 200, 200]
    assert "roleAssignments" in deletes[-1].path

    # An attempt to give itself AKS RBAC Writer at cluster scope (all namespaces) is refused.
    adapter = _adapter(aks)
    body = {
        "properties": {
            "roleDefinitionId": roles.role_definition_id(aks.arm.subscription_id, roles.AKS_RBAC_WRITER),
            "principalId": aks.arm.app_principal_id,
            "principalType": "ServicePrincipal",
        }
    }
    with pytest.raises(ArmCallFailed) as refused:
        adapter.create_role_assignment(aks.cluster_id, str(uuid.uuid4()), body)
    assert refused.value.fault.status == 403
    assert "Microsoft.Authorization/roleAssignments/write" in refused.value.fault.message
    # ...and so is the admin credential (local accounts aside, the action itself is not granted).
    verify = str(shared_ca().ca_path)
    token = aks.arm.issue_token(aks.arm.app_principal_id)
    admin = requests.post(
        f"{aks.arm.url}{aks.cluster_id}/listClusterAdminCredential?api-version=2026-08-01",
        headers={"Authorization": f"Bearer {token}"},
        verify=verify,
        timeout=10,
    )
    assert admin.status_code == 403

    # Idle stop and the start that follows work with the steady-state role alone.
    adapter.stop_cluster(RG, "vnode-batch-aks")
    _wait(lambda: aks.arm.power_transitions[-1:] == [(aks.cluster_id.lower(), "Stopped")] or _stopped(aks), "stop")
    readiness, reasons = drive(aks.gate())  # a new process: the bootstrap starts the stopped cluster
    assert readiness.cluster is not None, reasons
    assert any("starting the stopped managed cluster" in r for r in reasons), reasons
    assert _held(aks) == {STEADY_STATE: _rg_id(aks), roles.AKS_RBAC_WRITER: f"{aks.cluster_id}/namespaces/{NS}"}


def _stopped(aks: AksWorld) -> bool:
    cluster = aks.arm.get(aks.cluster_id) or {}
    props = cluster.get("properties") or {}
    return props.get("provisioningState") == "Succeeded" and (props.get("powerState") or {}).get("code") == "Stopped"


def test_a_cluster_deleted_later_names_the_fix_and_azd_provision_lets_it_rebuild(
    make_aks: Callable[..., AksWorld],
) -> None:
    aks = _world(make_aks)
    assert drive(aks.gate())[0].cluster is not None

    deleted = requests.delete(
        f"{aks.arm.url}{aks.cluster_id}?api-version=2026-08-01",
        headers={"Authorization": f"Bearer {aks.arm.issue_token(DEPLOYER)}"},
        verify=str(shared_ca().ca_path),
        timeout=10,
    )
    assert deleted.status_code == 202
    _wait(lambda: aks.arm.get(aks.cluster_id) is None, "the cluster to be deleted")

    readiness, reasons = drive(aks.gate())
    assert readiness.cluster is None, reasons
    assert readiness.hopeless, reasons  # blocked, not retried forever
    assert "Microsoft.ContainerService/managedClusters/write" in readiness.reason
    assert "run `azd provision`" in readiness.reason
    for role in ("Network Contributor", "Azure Kubernetes Service Contributor Role", "Role Based Access Control"):
        assert role in readiness.reason

    deploy(aks.arm, aks.arm.app_principal_id, _rg_id(aks))  # `azd provision`
    readiness, reasons = drive(aks.gate())
    assert readiness.cluster is not None, reasons
    assert set(_held(aks)) == {STEADY_STATE, roles.AKS_RBAC_WRITER}
