"""Dispatch taking back a Job it created for a request that had already ended (issue k1).

Dispatch reads the ledger, then creates the Job; a request may end in between (its first Job
finished, was reported and deleted at once: VNB_KEEP_FINISHED_SECONDS=0), and the create then
makes a second Job of a finished request. The check after the create deletes it
(``created_after_end``); if that check never ran — the create's answer was lost, or the ledger
write after it failed — the message comes back, finds its request ended, and ``leftover`` takes
the Job back then. A Job neither removes is removed by the reconciler once it finishes, without
an event (``shared.flows.reconcile_pass``: a stray Job).
"""

from __future__ import annotations

import logging

from shared.adapters.kube import Cluster
from shared.base.conventions import LABEL_STATE, STATE_REPORTED
from shared.cluster.readiness import ClusterGate
from shared.job.read import is_deleting, job_uid, metadata_of
from shared.ledger.records import Record

log = logging.getLogger("vnode_batch.dispatch")


def created_after_end(cluster: Cluster, name: str, key: str, why: str) -> None:
    """Delete (Background) a Job this dispatch created for a request that had ended."""
    cluster.delete_job(name, propagation="Background")
    log.warning("key %s %s: deleted its Job %s", key, why, name)


def leftover(gate: ClusterGate, name: str, known: Record) -> None:
    """A redelivery of a message whose request has ended: an earlier delivery of this message may
    have created a Job after the request ended and failed before the check after the create
    (the create's answer lost, the ledger write after it failed). Take that Job back now, before
    it runs the request again; the reconciler would remove it only once finished (issue k1).

    A Job that is reported, being deleted, or the one the ledger's outcome names is not touched.
    Raises what ``get_job``/``delete_job`` raise (transient: the host delivers the message again)."""
    cluster = gate.check().cluster
    if cluster is None:  # the reconciler removes it once the cluster answers (a stray Job)
        return
    job = cluster.get_job(name)
    if job is None or is_deleting(job) or (metadata_of(job).get("labels") or {}).get(LABEL_STATE) == STATE_REPORTED:
        return
    recorded = (known.outcome or {}).get("jobUid")
    if recorded is not None and recorded == job_uid(job):
        return
    created_after_end(cluster, name, known.key, f"ended ({known.state}) and a Job of it is left unreported")
