"""``python -m shared.cli cluster stop|start|status``: the operator's side of the idle stop (aks mode).

* ``stop`` refuses while Jobs are in flight or requests wait (``--force`` stops anyway: their
  pods keep running on ACI but nobody reports them until the cluster is back). With
  ``VNB_IDLE_STOP_MINUTES`` set it goes through the same power record as the timer, so running
  instances see the stop and defer (then start the cluster for the next request).
* ``start`` sends the start and returns (``bootstrap`` waits until the virtual node is Ready).
* ``status`` shows ARM's provisioning and power state and the power record.

Exit codes: 0 done, 1 refused or failed, 2 bad settings.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shared.config.settings import Settings

EXIT_REFUSED = 1
EXIT_INVALID = 2


def register(sub: Any, settings_of: Any) -> None:
    """Add the ``cluster`` command to the CLI's subparsers; ``settings_of(args)`` gives Settings or None."""
    p = sub.add_parser("cluster", help="stop, start or show the AKS cluster (idle stop's operator commands)")
    verbs = p.add_subparsers(dest="verb", required=True)
    stop = verbs.add_parser("stop", help="stop the cluster (refused while work is in flight)")
    stop.add_argument("--force", action="store_true", help="stop even with Jobs in flight or requests waiting")
    verbs.add_parser("start", help="start a stopped cluster (does not wait; `bootstrap` waits for Ready)")
    verbs.add_parser("status", help="ARM power state and the idle-stop record")
    p.set_defaults(func=lambda args: run(args, settings_of(args)))


def run(args: argparse.Namespace, settings: Settings | None) -> int:
    if settings is None:
        return EXIT_INVALID
    verb = {"stop": stop, "start": start, "status": status}[args.verb]
    return verb(settings, force=getattr(args, "force", False))


def _gate(settings: Settings) -> Any:
    from shared.cluster.gate import gate_for

    return gate_for(settings)


def _arm(settings: Settings) -> Any:
    from shared.cluster.arm_api import arm_for

    return arm_for(settings)


def stop(settings: Settings, *, force: bool = False) -> int:
    from shared.adapters.arm import ArmCallFailed
    from shared.adapters.queues import queues_for
    from shared.cluster.idle_gate import IdleGate
    from shared.cluster.power import Phase
    from shared.flows.idle import settle
    from shared.flows.reconcile import SELECT_UNREPORTED, KubeJobs

    assert settings.resource_group
    observed = _arm(settings).get_cluster(settings.resource_group, settings.cluster_name)
    if observed is None:
        print(f"cluster {settings.cluster_name} does not exist: nothing to stop", file=sys.stderr)
        return EXIT_REFUSED
    props = observed.get("properties") or {}
    if (props.get("powerState") or {}).get("code") == "Stopped" or props.get("provisioningState") == "Stopping":
        print(f"cluster {settings.cluster_name} is already {props.get('provisioningState')}/stopped")
        return 0
    gate = _gate(settings)
    idle = gate if isinstance(gate, IdleGate) else None
    if not force:
        cluster = (idle.inner if idle else gate).check().cluster
        jobs = len(KubeJobs(cluster).list_jobs(label_selector=SELECT_UNREPORTED, limit=1).items) if cluster else 0
        waiting = queues_for(settings).approximate_count(settings.requests_queue)
        if jobs or waiting:
            print(
                f"refusing to stop cluster {settings.cluster_name}: {'Jobs' if jobs else 'no Job'} in flight, "
                f"{waiting} request(s) waiting; wait for them or use --force",
                file=sys.stderr,
            )
            return EXIT_REFUSED
    reason = "stopped by an operator (cli cluster stop)"
    if idle:
        settle(idle, Phase.STOPPING, reason)
    try:
        _arm(settings).stop_cluster(settings.resource_group, settings.cluster_name)
    except ArmCallFailed as e:
        if idle:
            settle(idle, Phase.RUNNING, f"operator stop refused: {e}", active=True)
        print(str(e), file=sys.stderr)
        return EXIT_REFUSED
    if idle:
        settle(idle, Phase.STOPPED, reason)
        idle.inner.forget()
    print(f"stopping cluster {settings.cluster_name}: the next request starts it again (or `cluster start`)")
    return 0


def start(settings: Settings, *, force: bool = False) -> int:
    from shared.adapters.arm import ArmCallFailed
    from shared.cluster.idle_gate import IdleGate
    from shared.cluster.power import Phase
    from shared.flows.idle import settle

    try:
        _arm(settings).start_cluster(settings.resource_group, settings.cluster_name)
    except ArmCallFailed as e:
        print(str(e), file=sys.stderr)
        return EXIT_REFUSED
    gate = _gate(settings)
    if isinstance(gate, IdleGate):
        settle(gate, Phase.RUNNING, "started by an operator (cli cluster start)", active=True)
    print(f"starting cluster {settings.cluster_name}; `python -m shared.cli bootstrap` waits until it is Ready")
    return 0


def status(settings: Settings, *, force: bool = False) -> int:
    from shared.cluster.idle_gate import IdleGate

    assert settings.resource_group
    cluster = _arm(settings).get_cluster(settings.resource_group, settings.cluster_name)
    if cluster is None:
        print(f"cluster {settings.cluster_name} does not exist (the first request bootstraps it)")
        return 0
    props = cluster.get("properties") or {}
    power = (props.get("powerState") or {}).get("code") or "Running"
    print(f"cluster {settings.cluster_name}: provisioningState {props.get('provisioningState')}, powerState {power}")
    gate = _gate(settings)
    if isinstance(gate, IdleGate):
        record, _ = gate.store.read()
        if record is None:
            print(f"idle stop after {settings.idle_stop_minutes} min: no record yet (the reconcile timer writes it)")
        else:
            print(
                f"idle stop after {settings.idle_stop_minutes} min: {record.phase} since {record.since.isoformat()}, "
                f"last activity {record.last_activity.isoformat()} ({record.reason})"
            )
    else:
        print("idle stop: off (VNB_IDLE_STOP_MINUTES unset)")
    return 0
