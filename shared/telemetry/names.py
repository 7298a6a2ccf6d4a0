"""The instruments and attributes the app emits (pure): one home for their names.

Names follow the OpenTelemetry semantic conventions where one exists (``messaging.*``: the
messaging conventions, opentelemetry.io/docs/specs/semconv/messaging/messaging-metrics/ and
``messaging.destination.name``); everything the conventions do not cover is ours, under the
``vnb.`` prefix. Units are UCUM as the metrics API asks (opentelemetry.io/docs/specs/otel/metrics/
api/#instrument-unit): ``s`` seconds, ``{request}`` a count of requests, ``USD`` dollars.

The alert rules and workbook (infra/) query these names in Application Insights ``customMetrics``
(the Azure Monitor exporter writes each OpenTelemetry metric there under its instrument name:
learn.microsoft.com/azure/azure-monitor/app/opentelemetry-add-modify "Add custom metrics"), so a
renamed instrument silently empties a chart: tests/unit/telemetry/test_names.py pins the list
against docs/operations.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class Kind(enum.StrEnum):
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    GAUGE = "observable gauge"


@dataclass(frozen=True)
class Instrument:
    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...] = ()


# --- attributes ---------------------------------------------------------------------------------
SOURCE: Final = "vnb.source"
"""Where a request came in: ``queue``, ``api`` or ``schedule``."""
TEAM: Final = "vnb.team"
"""The team it runs for (VNB_TEAMS_FILE); ``""`` for none."""
OUTCOME: Final = "vnb.outcome"
"""How it ended: ``succeeded``, ``failed``, ``cancelled``, ``rejected``, ``deadlettered``."""
REASON: Final = "vnb.reason"
"""Why (an event's ``reason``, a wait's reason, an ACI refusal's class)."""
CREDENTIAL: Final = "vnb.credential"
"""Which credential refresh failed: ``acr`` or ``keyvault``."""
DESTINATION: Final = "messaging.destination.name"
"""Semantic convention: the queue's name."""
REQUEST_KEY: Final = "vnb.request.key"
"""On spans only (a metric attribute per request would be unbounded cardinality)."""
JOB_NAME: Final = "vnb.job.name"
DEFERRALS: Final = "vnb.request.deferrals"

# --- instruments --------------------------------------------------------------------------------
RECEIVED: Final = Instrument(
    "vnb.requests.received", Kind.COUNTER, "{request}", "Requests recorded for the first time.", (SOURCE, TEAM)
)
FINISHED: Final = Instrument(
    "vnb.requests.finished",
    Kind.COUNTER,
    "{request}",
    "Requests that reached their one outcome (claimed by the ledger's outcome writer).",
    (OUTCOME, REASON, TEAM),
)
WAITING: Final = Instrument(
    "vnb.requests.waiting", Kind.GAUGE, "{request}", "Requests waiting, by why (reconcile pass).", (REASON, TEAM)
)
OLDEST_WAIT: Final = Instrument(
    "vnb.requests.oldest_wait", Kind.GAUGE, "s", "Age of the oldest waiting request (reconcile pass).", (TEAM,)
)
CREATE_DURATION: Final = Instrument(
    "vnb.request.create.duration", Kind.HISTOGRAM, "s", "From first enqueue to its Job created."
)
REPORT_DURATION: Final = Instrument(
    "vnb.request.report.duration", Kind.HISTOGRAM, "s", "From the Job's end to its outcome event sent."
)
JOB_DURATION: Final = Instrument(
    "vnb.job.duration", Kind.HISTOGRAM, "s", "A Job's run time, start to end.", (OUTCOME, TEAM)
)
CORES_USED: Final = Instrument("vnb.capacity.cores.used", Kind.GAUGE, "{core}", "ACI cores held by the app's Jobs.")
CORES_LIMIT: Final = Instrument("vnb.capacity.cores.limit", Kind.GAUGE, "{core}", "VNB_CAPACITY_CORES (the budget).")
GROUPS_USED: Final = Instrument(
    "vnb.capacity.groups.used", Kind.GAUGE, "{group}", "ACI container groups held by the app's Jobs."
)
GROUPS_LIMIT: Final = Instrument(
    "vnb.capacity.groups.limit", Kind.GAUGE, "{group}", "VNB_CAPACITY_CONTAINER_GROUPS (the budget)."
)
CREATES_USED: Final = Instrument(
    "vnb.capacity.creates.used", Kind.GAUGE, "{create}", "Container-group creates in the last 5-minute window."
)
CREATES_LIMIT: Final = Instrument(
    "vnb.capacity.creates.limit",
    Kind.GAUGE,
    "{create}",
    "Creates allowed in the 5-minute window (VNB_CAPACITY_CREATES_PER_5MIN).",
)
ACI_REFUSALS: Final = Instrument(
    "vnb.aci.refusals", Kind.COUNTER, "{refusal}", "Pods ACI refused for quota, capacity or throttling.", (REASON,)
)
REQUEUES: Final = Instrument(
    "vnb.capacity.requeues", Kind.COUNTER, "{request}", "Requests given back to the queue after an ACI refusal."
)
COST: Final = Instrument("vnb.cost", Kind.COUNTER, "USD", "Estimated ACI cost of finished Jobs.", (TEAM,))
POISON_DEPTH: Final = Instrument(
    "vnb.queue.poison.depth",
    Kind.GAUGE,
    "{message}",
    "Approximate messages in a poison queue (reconcile pass).",
    (DESTINATION,),
)
RECONCILE_PASSES: Final = Instrument("vnb.reconcile.passes", Kind.COUNTER, "{pass}", "Reconcile passes run.")
CREDENTIAL_FAILURES: Final = Instrument(
    "vnb.credentials.refresh.failures",
    Kind.COUNTER,
    "{failure}",
    "Failed refreshes of an ACR pull Secret or a Key Vault read.",
    (CREDENTIAL,),
)

ALL: Final = (
    RECEIVED,
    FINISHED,
    WAITING,
    OLDEST_WAIT,
    CREATE_DURATION,
    REPORT_DURATION,
    JOB_DURATION,
    CORES_USED,
    CORES_LIMIT,
    GROUPS_USED,
    GROUPS_LIMIT,
    CREATES_USED,
    CREATES_LIMIT,
    ACI_REFUSALS,
    REQUEUES,
    COST,
    POISON_DEPTH,
    RECONCILE_PASSES,
    CREDENTIAL_FAILURES,
)

# --- spans --------------------------------------------------------------------------------------
SPAN_RECEIVE: Final = "vnb.request.receive"
SPAN_WAIT: Final = "vnb.request.wait"
SPAN_DISPATCH: Final = "vnb.request.dispatch"
"""A later delivery of a deferred request (after its wait)."""
SPAN_CREATE: Final = "vnb.job.create"
SPAN_RUN: Final = "vnb.job.run"
SPAN_REPORT: Final = "vnb.request.report"
SPAN_END: Final = "vnb.request.end"
"""An outcome decided without a Job (rejected, dead-lettered, cancelled)."""
