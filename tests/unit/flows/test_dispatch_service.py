"""Dispatch decisions while the cluster is not ready (the gate is injected, not patched)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.cluster.readiness import Readiness
from shared.config.settings import Settings
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound, Outcome
from shared.intake.deferral import unwrap
from tests.unit.flows.test_reconcile_events import validate_event

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
BODY = json.dumps({"image": "mcr.microsoft.com/azurelinux/base/core:3.0", "correlationId": "c-1"}).encode()


class NotReady:
    def __init__(self, reason: str, *, hopeless: bool = False) -> None:
        self.answer = Readiness(cluster=None, reason=reason, hopeless=hopeless)

    def check(self) -> Readiness:
        return self.answer


class Requeued:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def __call__(self, text: str, delay: int) -> None:
        self.sent.append((text, delay))


def run(
    settings: Settings, gate: Any, body: bytes = BODY, *, at: datetime, message_id: str = "m-1"
) -> tuple[Any, Requeued]:
    requeue = Requeued()
    result = dispatch(
        Inbound(message_id=message_id, body=body, inserted_at=T0),
        settings=settings,
        gate=gate,
        requeue=requeue,
        now=lambda: at,
    )
    return result, requeue


def test_not_ready_defers_with_the_key_of_the_first_message(settings: Settings) -> None:
    result, requeue = run(settings, NotReady("cluster: Creating"), at=T0 + timedelta(seconds=5))
    assert result.outcome is Outcome.DEFERRED
    assert result.events == []
    [(text, delay)] = requeue.sent
    assert delay == settings.bootstrap_defer_seconds
    request, deferral = unwrap(json.loads(text))
    assert deferral is not None
    assert (deferral.key, deferral.message_id, deferral.first_seen, deferral.count) == ("m-1", "m-1", T0, 1)
    assert request == json.loads(BODY)

    # The re-enqueued message has a new id, but keeps its key, first-seen time and count.
    again, requeue2 = run(
        settings, NotReady("cluster: Creating"), text.encode(), at=T0 + timedelta(seconds=40), message_id="m-2"
    )
    assert again.outcome is Outcome.DEFERRED
    assert again.key == "m-1"
    _, deferral2 = unwrap(json.loads(requeue2.sent[0][0]))
    assert deferral2 is not None
    assert (deferral2.key, deferral2.first_seen, deferral2.count) == ("m-1", T0, 2)


def test_waiting_longer_than_allowed_is_deadlettered_with_the_reason(make_settings: Any) -> None:
    settings = make_settings(VNB_BOOTSTRAP_MAX_WAIT_SECONDS="60")
    result, requeue = run(settings, NotReady("aciConnectorLinux: Updating"), at=T0 + timedelta(seconds=61))
    assert result.outcome is Outcome.DEADLETTERED
    assert requeue.sent == []
    event = json.loads(result.events[0])
    assert event["type"] == "io.vnodebatch.request.deadlettered"
    assert event["data"]["reason"] == "ClusterNotReady"
    assert "aciConnectorLinux: Updating" in event["data"]["detail"]
    assert event["data"]["correlationId"] == "c-1"


def test_missing_role_waits_out_the_propagation_grace_then_deadletters(make_settings: Any) -> None:
    settings = make_settings(VNB_PERMISSION_GRACE_SECONDS="600")
    gate = NotReady("grant Network Contributor on /subscriptions/s/resourceGroups/rg-aks", hopeless=True)
    early, requeue = run(settings, gate, at=T0 + timedelta(seconds=30))
    assert early.outcome is Outcome.DEFERRED
    assert len(requeue.sent) == 1
    late, _ = run(settings, gate, at=T0 + timedelta(seconds=601))
    assert late.outcome is Outcome.DEADLETTERED
    assert "Network Contributor" in json.loads(late.events[0])["data"]["detail"]


def test_invalid_request_is_rejected_before_the_cluster_is_asked(settings: Settings) -> None:
    class Unreachable:
        def check(self) -> Readiness:
            raise AssertionError("the gate must not be consulted for an invalid request")

    result, _ = run(settings, Unreachable(), b'{"image": 1}', at=T0)
    assert result.outcome is Outcome.REJECTED


class Untouched:
    def check(self) -> Readiness:
        raise AssertionError("a forged envelope must not reach the cluster")


def envelope(**meta: Any) -> bytes:
    fields = {"key": "k-1", "messageId": "m-0", "firstSeen": T0.isoformat(), "count": 1, **meta}
    return json.dumps({"vnodeBatchDeferred": fields, "request": json.loads(BODY)}).encode()


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        ({"key": ""}, "vnodeBatchDeferred.key"),  # events require requestKey minLength 1
        ({"key": "a\nb"}, "vnodeBatchDeferred.key"),
        ({"key": "clé"}, "vnodeBatchDeferred.key"),
        ({"messageId": "m\n1"}, "vnodeBatchDeferred.messageId"),
        ({"count": 0}, "vnodeBatchDeferred.count"),
        ({"firstSeen": "1999-01-01T00:00:00+00:00"}, "vnodeBatchDeferred.firstSeen"),  # absurd queueToStart
        ({"firstSeen": (T0 + timedelta(days=1)).isoformat()}, "vnodeBatchDeferred.firstSeen"),  # the future
        ({"firstSeen": "2026-11-27T12:00:00"}, "vnodeBatchDeferred.firstSeen"),  # no offset: used to crash
    ],
)
def test_a_forged_deferral_envelope_is_rejected_with_a_field_error(
    settings: Settings, meta: dict[str, Any], field: str
) -> None:
    result, requeue = run(settings, Untouched(), envelope(**meta), at=T0 + timedelta(seconds=30))
    assert result.outcome is Outcome.REJECTED
    assert requeue.sent == []
    [text] = result.events
    event = validate_event(text)
    assert field in [e["field"] for e in event["data"]["errors"]]
    assert event["data"]["correlationId"] == "c-1"


def test_an_envelope_within_the_bounds_is_still_honoured(settings: Settings) -> None:
    # first seen as long ago as a deferral can be: insertion time minus VNB_BOOTSTRAP_MAX_WAIT_SECONDS
    first = T0 - timedelta(seconds=settings.bootstrap_max_wait_seconds - 60)
    result, requeue = run(settings, NotReady("cluster: Creating"), envelope(firstSeen=first.isoformat()), at=T0)
    assert result.outcome is Outcome.DEFERRED
    _, deferral = unwrap(json.loads(requeue.sent[0][0]))
    assert deferral is not None
    assert (deferral.key, deferral.first_seen, deferral.count) == ("k-1", first, 2)
