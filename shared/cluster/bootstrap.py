"""Bootstrap of the AKS cluster with the virtual node (aks mode), and the cluster gate built on it.

The step engine (:class:`Bootstrap`) observes each step with GETs, lets the pure
``shared.cluster.plan.steps`` decide, and performs the write a step asks for. It never waits:
a long-running PUT is started and the step answers "wait"; the next evaluation (another
message, a few seconds later) observes ``provisioningState`` and moves on. Every step is
idempotent and safe under races between instances: GET before PUT, deterministic
role-assignment names, 409 "in progress" read as "not ready yet", 409 RoleAssignmentExists
read as done.

:class:`AksGate` is what dispatch asks "is the cluster ready?" (``ClusterGate``). Its answer
is cached: "ready" for ``VNB_READY_CACHE_SECONDS`` (then only the virtual node is checked
again, through Kubernetes, without ARM), "not ready" for a few seconds, so a burst of
deferred messages costs one evaluation, not one per message.

``python -m shared.cli plan`` (what-if: GETs only) and ``bootstrap`` (run to completion,
with a progress display) use the same engine; see ``shared.cli.bootstrap``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.adapters.kube import Cluster, from_token
from shared.base.conventions import VIRTUAL_NODE_NAME
from shared.base.errors import VnbError
from shared.cluster import network
from shared.cluster.arm_api import ArmApi, arm_for
from shared.cluster.network import Finding, NetworkPlan, NetworkPlanInvalid
from shared.cluster.plan.access import (
    RoleGrant,
    app_namespace_grant,
    classify,
    cluster_subnet_grant,
    decide_rights,
    decide_role,
    vnode_subnet_grant,
)
from shared.cluster.plan.aks import (
    addon_principal,
    cluster_body,
    cluster_principal,
    cluster_state,
    decide_addon,
    decide_cluster,
)
from shared.cluster.plan.namespace import (
    KubeEndpoint,
    decide_namespace,
    decide_virtual_node,
    kube_endpoint,
    managed_namespace_body,
    network_policy_engine,
    node_ready,
)
from shared.cluster.plan.steps import ACI_PROVIDER, Decision, Do, Step, Targets, decide_provider, targets_for
from shared.cluster.plan.vnet import decide_network, vnet_body
from shared.cluster.readiness import Readiness
from shared.config.settings import Settings

log = logging.getLogger("vnode_batch.bootstrap")

NOT_READY_REUSE_SECONDS = 5.0
"""Longest a "not ready" answer is reused (capped by VNB_READY_CACHE_SECONDS): a burst of deferred
messages on one instance costs one evaluation, and the bootstrap still advances every few seconds."""


@dataclass
class Evaluation:
    """What one pass over the steps found (and, when applying, did)."""

    decisions: list[Decision]
    warnings: list[Finding] = field(default_factory=list)
    cluster: Cluster | None = None

    @property
    def blocking(self) -> Decision | None:
        """The furthest step that is not done: where the bootstrap stands (what dispatch reports).

        Usually the only one; the exception is the provider, whose registration runs while
        the network and the cluster are built.
        """
        waiting = (d for d in reversed(self.decisions) if not d.done and d.do is not Do.PENDING)
        pending = (d for d in self.decisions if d.do is Do.PENDING)
        return next(waiting, None) or next(pending, None)

    @property
    def ready(self) -> bool:
        return self.cluster is not None

    @property
    def hopeless(self) -> bool:
        return any(d.hopeless for d in self.decisions)

    def readiness(self) -> Readiness:
        if self.cluster is not None:
            return Readiness(cluster=self.cluster)
        first = next((d for d in self.decisions if d.hopeless), None) or self.blocking
        if first is None:
            return Readiness(cluster=None, reason="bootstrap: no step evaluated")
        return Readiness(cluster=None, reason=first.reason, hopeless=first.hopeless)


@dataclass
class _Pass:
    """State shared by the steps of one evaluation."""

    plan: NetworkPlan
    apply: bool
    done: set[Step] = field(default_factory=set)
    cluster: dict[str, Any] | None = None
    kube: Cluster | None = None


class Bootstrap:
    """The step engine. One per gate; it remembers what never goes back (a registered provider,
    role assignments made, the cluster's server and CA) so that later passes skip those GETs."""

    def __init__(self, settings: Settings, *, arm: ArmApi | None = None) -> None:
        self.settings = settings
        self.targets: Targets = targets_for(settings)
        self._arm = arm
        self._arm_lock = threading.Lock()
        self._location: str | None = settings.location
        self._known_done: set[str] = set()
        self._endpoint: KubeEndpoint | None = None
        self._node_forbidden_logged = False

    @property
    def arm(self) -> ArmApi:
        with self._arm_lock:
            if self._arm is None:
                self._arm = arm_for(self.settings)
            return self._arm

    def network_plan(self) -> tuple[NetworkPlan, list[Finding]]:
        """The validated network plan and its warnings (NetworkPlanInvalid if it has errors)."""
        plan = network.plan_for(self.settings)
        return plan, network.validated(plan)

    # --- one pass ------------------------------------------------------------------------
    def evaluate(self, *, apply: bool) -> Evaluation:
        """Observe every step in order. With ``apply``, perform the writes that are due and stop
        at the first step that must wait; without, report every step (what-if, GETs only)."""
        try:
            plan, warnings = self.network_plan()
        except NetworkPlanInvalid as e:
            errors = "; ".join(str(f) for f in e.findings if f.severity is network.Severity.ERROR)
            return Evaluation([Decision(Step.NETWORK, Do.BLOCKED, f"invalid network plan: {errors}")], e.findings)
        state = _Pass(plan=plan, apply=apply)
        steps: list[tuple[Step, Callable[[_Pass], Decision]]] = [
            (Step.PROVIDER, self._provider),
            (Step.NETWORK, self._network),
            (Step.CLUSTER, self._cluster),
            (Step.CLUSTER_SUBNET_ROLE, self._cluster_role),
            (Step.ADDON, self._addon),
            (Step.VNODE_SUBNET_ROLE, self._vnode_role),
            (Step.APP_ROLE, self._app_role),
            (Step.NAMESPACE, self._namespace),
            (Step.VIRTUAL_NODE, self._virtual_node),
            (Step.BOOTSTRAP_RIGHTS, self._rights),
        ]
        decisions: list[Decision] = []
        for step, run in steps:
            decision = self._guarded(step, run, state)
            decisions.append(decision)
            if decision.done:
                state.done.add(step)
                continue
            if decision.hopeless and apply:
                break
            # Registration of the ACI provider takes minutes and only the addon needs it:
            # the network and the cluster go ahead meanwhile.
            if apply and not (step is Step.PROVIDER and decision.do is Do.WAIT):
                break
        cluster = state.kube if len(state.done) == len(steps) else None
        return Evaluation(decisions, warnings, cluster)

    def _guarded(self, step: Step, run: Callable[[_Pass], Decision], state: _Pass) -> Decision:
        from shared.adapters.arm import ArmCallFailed

        try:
            return run(state)
        except ArmCallFailed as e:
            return classify(step, e.fault, self.targets)
        except VnbError as e:  # Kubernetes adapter errors: the API server may still be coming up
            self._endpoint = None  # and a recreated cluster has a new server: ask ARM again next time
            return Decision(step, Do.WAIT, f"Kubernetes API: {e}")

    # --- the steps -----------------------------------------------------------------------
    def _provider(self, p: _Pass) -> Decision:
        from shared.adapters.arm import ArmCallFailed

        if "provider" in self._known_done:
            return decide_provider("Registered")
        try:
            state = self.arm.provider_state(ACI_PROVIDER)
        except ArmCallFailed as e:
            if e.status != 403:
                raise
            # Reading a provider is a subscription-scope read; should resource-group rights not
            # cover it, go on: the addon PUT says MissingSubscriptionRegistration if it matters.
            return Decision(
                Step.PROVIDER,
                Do.NOTHING,
                f"registration state of {ACI_PROVIDER} not readable with the app's rights (403): assumed registered",
            )
        decision = decide_provider(state)
        if decision.writes and p.apply:
            decision = decide_provider(self.arm.register_provider(ACI_PROVIDER))
            if decision.do is Do.WAIT:
                decision = Decision(Step.PROVIDER, Do.WAIT, f"registration of {ACI_PROVIDER} requested", ACI_PROVIDER)
        if decision.done:
            self._known_done.add("provider")  # providers are not unregistered under a running app
        return decision

    def _location_for_create(self) -> str:
        if self._location is None:
            self._location = self.arm.resource_group_location(self.targets.resource_group)
        return self._location

    def _network(self, p: _Pass) -> Decision:
        t = self.targets
        vnet = self.arm.get_vnet(t.resource_group, t.vnet_name)
        decision = decide_network(vnet, p.plan, None)
        if decision.writes and decision.resource == "vnet":
            decision = Decision(
                decision.step,
                decision.do,
                decision.why,
                decision.resource,
                vnet_body(p.plan, self._location_for_create()),
            )
        if decision.writes and p.apply:
            assert decision.body is not None
            if decision.resource == "vnet":
                self.arm.put_vnet(t.resource_group, t.vnet_name, dict(decision.body))
                return Decision(Step.NETWORK, Do.WAIT, f"creating vnet {t.vnet_name} with both subnets", "vnet")
            subnet = decision.resource.removeprefix("subnet:")
            self.arm.put_subnet(t.resource_group, t.vnet_name, subnet, dict(decision.body))
            return Decision(Step.NETWORK, Do.WAIT, f"creating subnet {subnet}", decision.resource)
        return decision

    def _cluster(self, p: _Pass) -> Decision:
        t = self.targets
        cluster = self.arm.get_cluster(t.resource_group, t.cluster_name)
        p.cluster = cluster
        desired = None
        if cluster is None:
            if Step.NETWORK not in p.done:
                return Decision(
                    Step.CLUSTER, Do.PENDING, f"managed cluster {t.cluster_name}: created after the network"
                )
            desired = cluster_body(self.settings, p.plan, t, self._location_for_create())
        decision = decide_cluster(cluster, p.plan, t, desired)
        if decision.do is Do.START and p.apply:  # stopped (idle stop, an operator): start, never wait
            self.arm.start_cluster(t.resource_group, t.cluster_name)
            return Decision(
                Step.CLUSTER, Do.WAIT, f"starting the stopped managed cluster {t.cluster_name}", t.cluster_id
            )
        if decision.writes and p.apply:
            assert decision.body is not None
            self.arm.put_cluster(t.resource_group, t.cluster_name, dict(decision.body))
            verb = "creating" if decision.do is Do.CREATE else "updating"
            return Decision(Step.CLUSTER, Do.WAIT, f"{verb} managed cluster {t.cluster_name}", t.cluster_id)
        return decision

    def _role(self, grant: RoleGrant, p: _Pass) -> Decision:
        if grant.name in self._known_done:
            return decide_role(grant, grant.body)
        decision = decide_role(grant, self.arm.get_role_assignment(grant.scope, grant.name))
        if decision.writes and p.apply:
            created = self.arm.create_role_assignment(grant.scope, grant.name, dict(grant.body))
            how = "granted" if created else "already granted under another name"
            decision = Decision(grant.step, Do.NOTHING, f"{grant.describe()} {how}", grant.name)
            log.info("bootstrap %s: %s", grant.step, decision.why)
        if decision.done:
            self._known_done.add(grant.name)
        return decision

    def _cluster_role(self, p: _Pass) -> Decision:
        principal = cluster_principal(p.cluster)
        if principal is None or Step.CLUSTER not in p.done:
            return Decision(
                Step.CLUSTER_SUBNET_ROLE, Do.PENDING, "after the cluster exists (its identity is made then)"
            )
        return self._role(cluster_subnet_grant(self.targets, principal), p)

    def _addon(self, p: _Pass) -> Decision:
        if p.cluster is None or Step.CLUSTER not in p.done:
            return Decision(Step.ADDON, Do.PENDING, "after the cluster")
        if Step.PROVIDER not in p.done:
            return Decision(Step.ADDON, Do.WAIT, f"waiting for the registration of {ACI_PROVIDER}")
        decision = decide_addon(p.cluster, p.plan, self.targets)
        if decision.writes and p.apply:
            assert decision.body is not None
            t = self.targets
            self.arm.put_cluster(t.resource_group, t.cluster_name, dict(decision.body))
            return Decision(
                Step.ADDON, Do.WAIT, f"enabling aciConnectorLinux on {p.plan.vnode_subnet_name}", t.cluster_id
            )
        return decision

    def _vnode_role(self, p: _Pass) -> Decision:
        principal = addon_principal(p.cluster)
        if principal is None or Step.ADDON not in p.done:
            return Decision(Step.VNODE_SUBNET_ROLE, Do.PENDING, "after the addon (its identity is made then)")
        return self._role(vnode_subnet_grant(self.targets, principal), p)

    def _app_role(self, p: _Pass) -> Decision:
        if p.cluster is None:
            return Decision(Step.APP_ROLE, Do.PENDING, "after the cluster (the namespace scope is inside it)")
        return self._role(app_namespace_grant(self.targets), p)

    def _kube(self, p: _Pass) -> Cluster:
        if p.kube is None:
            t = self.targets
            if self._endpoint is None:
                raw = self.arm.cluster_user_kubeconfig(t.resource_group, t.cluster_name)
                self._endpoint = kube_endpoint(raw)
            http = from_token(
                server=self._endpoint.server,
                ca_pem=self._endpoint.ca_pem,
                token=self.arm.kube_token,
                timeout=self.settings.kube_timeout_seconds,
                cache_key=f"aks:{t.cluster_id.lower()}",
            )
            p.kube = Cluster(http, self.settings.namespace)
        return p.kube

    def _namespace(self, p: _Pass) -> Decision:
        # An AKS managed namespace, through ARM: the app's Kubernetes rights (RBAC Writer on its
        # namespace) cannot create a Namespace, which is cluster-scoped; AKS Contributor on the
        # resource group covers managedClusters/managedNamespaces/write.
        if p.cluster is None or Step.CLUSTER not in p.done:
            return Decision(Step.NAMESPACE, Do.PENDING, "after the cluster (a managed namespace is part of it)")
        t = self.targets
        observed = self.arm.get_managed_namespace(t.resource_group, t.cluster_name, t.namespace)
        desired = None
        if observed is None:
            location = str(p.cluster.get("location") or "") or self._location_for_create()
            desired = managed_namespace_body(t, location, network_policy=network_policy_engine(p.cluster))
        decision = decide_namespace(observed, t, desired, cluster_state(p.cluster))
        if decision.writes and p.apply:
            assert decision.body is not None
            self.arm.put_managed_namespace(t.resource_group, t.cluster_name, t.namespace, dict(decision.body))
            log.info("bootstrap namespace: creating managed namespace %s", t.namespace)
            return Decision(
                Step.NAMESPACE, Do.WAIT, f"creating managed namespace {t.namespace}", t.managed_namespace_id
            )
        return decision

    def _virtual_node(self, p: _Pass) -> Decision:
        if Step.ADDON not in p.done or Step.NAMESPACE not in p.done:
            return Decision(Step.VIRTUAL_NODE, Do.PENDING, "after the addon and the namespace")
        try:
            return decide_virtual_node(self._kube(p).get_node(VIRTUAL_NODE_NAME))
        except ValueError as e:  # the user kubeconfig did not parse
            return Decision(Step.VIRTUAL_NODE, Do.BLOCKED, f"the cluster user credential is unusable: {e}")
        except VnbError as e:
            if e.status != 403:
                raise
            # Nodes are cluster-scoped; an app holding only namespace-scoped rights cannot read
            # them. The addon's Succeeded state is then the best evidence available.
            if not self._node_forbidden_logged:
                log.warning("bootstrap: node %s is not readable (403); trusting the addon's state", VIRTUAL_NODE_NAME)
                self._node_forbidden_logged = True
            return Decision(
                Step.VIRTUAL_NODE,
                Do.NOTHING,
                f"node {VIRTUAL_NODE_NAME} not readable with namespace rights (403); the addon reports Succeeded",
            )

    def _rights(self, p: _Pass) -> Decision:
        # Last: every grant the bootstrap makes is made, so the rights to make them can go. Never
        # blocks readiness: a delete ARM refuses leaves the rights held, said in the log and the plan.
        from shared.adapters.arm import ArmCallFailed

        if len(p.done) < len(Step) - 1:
            return Decision(Step.BOOTSTRAP_RIGHTS, Do.PENDING, "given up once the cluster is ready")
        if "rights" in self._known_done:
            return decide_rights([], self.targets)
        t = self.targets
        decision = Decision(Step.BOOTSTRAP_RIGHTS, Do.GIVE_UP, "list the app's role assignments")
        try:
            decision = decide_rights(self.arm.list_role_assignments(t.resource_group_id, t.app_principal_id), t)
            if decision.writes and p.apply:
                assert decision.body is not None
                for assignment_id in decision.body["delete"]:
                    self.arm.delete_role_assignment(assignment_id)
                log.info("bootstrap %s: %s: done", Step.BOOTSTRAP_RIGHTS, decision.why)
                decision = Decision(Step.BOOTSTRAP_RIGHTS, Do.NOTHING, f"{decision.why}: done")
        except ArmCallFailed as e:
            why = f"{decision.why} failed ({e}); the app keeps them until deleted by hand or the next evaluation"
            log.warning("bootstrap %s: %s", Step.BOOTSTRAP_RIGHTS, why)
            return Decision(Step.BOOTSTRAP_RIGHTS, Do.NOTHING, why)
        if decision.done:
            self._known_done.add("rights")
        return decision

    # --- after "ready" ---------------------------------------------------------------------
    def still_ready(self, cluster: Cluster) -> bool:
        """Cheap re-check of a ready cluster: the virtual node through Kubernetes, no ARM call."""
        try:
            return node_ready(cluster.get_node(VIRTUAL_NODE_NAME))
        except VnbError as e:
            return e.status == 403  # cannot see nodes with namespace rights: not evidence of trouble


@dataclass(frozen=True)
class _Answer:
    readiness: Readiness
    at: float


class AksGate:
    """``ClusterGate`` for aks mode: cached readiness in front of the bootstrap engine."""

    def __init__(
        self,
        settings: Settings,
        *,
        bootstrap: Bootstrap | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._bootstrap = bootstrap or Bootstrap(settings)
        self._clock = clock
        self._lock = threading.Lock()
        self._ready: _Answer | None = None
        self._last: _Answer | None = None
        self._last_reason = ""

    @property
    def bootstrap(self) -> Bootstrap:
        return self._bootstrap

    def forget(self) -> None:
        """Drop cached answers (the idle policy stopped the cluster: ask ARM again next time)."""
        with self._lock:
            self._ready = self._last = None

    def check(self) -> Readiness:
        """Ready (with the Cluster to use) or why not; never waits for ARM operations."""
        ready = self._ready
        ttl = self._settings.ready_cache_seconds
        if ready is not None and self._clock() - ready.at < ttl:
            return ready.readiness  # the hot path: no lock, no call
        with self._lock:  # one evaluation per process at a time; the others reuse its answer
            now = self._clock()
            ready = self._ready
            if ready is not None:
                if now - ready.at < ttl:
                    return ready.readiness
                cluster = ready.readiness.cluster
                if cluster is not None and self._bootstrap.still_ready(cluster):
                    self._ready = _Answer(ready.readiness, self._clock())
                    return ready.readiness
                log.warning("bootstrap: the cluster no longer looks ready; evaluating the steps again")
                self._ready = None
            last = self._last
            if last is not None and now - last.at < min(ttl, NOT_READY_REUSE_SECONDS):
                return last.readiness
            evaluation = self._bootstrap.evaluate(apply=True)
            readiness = evaluation.readiness()
            self._report(evaluation, readiness)
            answer = _Answer(readiness, self._clock())
            if readiness.cluster is not None:
                self._ready, self._last = answer, None
            else:
                self._last = answer
            return readiness

    def _report(self, evaluation: Evaluation, readiness: Readiness) -> None:
        for finding in evaluation.warnings:
            if finding.severity is network.Severity.WARNING and not self._last_reason:
                log.warning("network plan: %s", finding)
        reason = "ready" if readiness.cluster is not None else readiness.reason
        if reason == self._last_reason:
            return
        self._last_reason = reason
        if readiness.cluster is not None:
            log.info("bootstrap: cluster %s ready (node %s Ready)", self._settings.cluster_name, VIRTUAL_NODE_NAME)
        elif readiness.hopeless:
            log.error("bootstrap blocked, waiting cannot help: %s", readiness.reason)
        else:
            log.info("bootstrap not ready: %s", readiness.reason)
