"""Every event type against its published JSON Schema and the CloudEvents SDK's own parser.

``validate_event`` is also what the integration tests call on every event they receive.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from shared.base.errors import FieldError
from shared.outcomes import events

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas" / "events"
NOW = datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)


@cache
def _validator() -> Draft202012Validator:
    docs = [json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.json"))]
    registry: Registry[Any] = Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in docs)
    envelope = next(d for d in docs if d["$id"].endswith("/event.v1.json"))
    for doc in docs:
        Draft202012Validator.check_schema(doc)
    return Draft202012Validator(envelope, registry=registry)


def validate_event(text: str) -> dict[str, Any]:
    """Raise unless ``text`` is a valid vnode-batch event; return it decoded."""
    assert len(text.encode()) <= events.MAX_EVENT_BYTES, "an event must fit one queue message"
    event: dict[str, Any] = json.loads(text)
    errors = sorted(_validator().iter_errors(event), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    parsed = JSONFormat().read(CloudEvent, text.encode())  # CloudEvents 1.0 conformance
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_id() == event["id"]
    assert parsed.get_type() == event["type"]
    assert parsed.get_time() is not None
    assert parsed.get_data() == event["data"]
    return event


def job_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "requestKey": "order-42",
        "jobName": "vnb-order-42-0123456789",
        "namespace": "vnode-batch",
        "jobUid": "3f0c0d4e-0000-4000-8000-000000000001",
        "correlationId": "c-1",
        "messageId": "m-1",
        "enqueuedAt": "2026-11-27T01:00:00Z",
        "createdAt": "2026-11-27T01:00:01Z",
        "startedAt": "2026-11-27T01:00:30Z",
        "finishedAt": "2026-11-27T01:02:03Z",
        "durationSeconds": 93.0,
        "queueToStartSeconds": 30.0,
        "outcome": "succeeded",
        "reason": "Completed",
        "message": "Reached expected number of succeeded pods",
        "exitCode": 0,
        "exitCodeUnavailable": None,
        "providerFailure": None,
        "resources": {
            "cpu": {"requested": "125m", "applied": "130m"},
            "memory": {"requested": None, "applied": "1500M"},
        },
        "indexes": None,
        "attempts": {"succeeded": 1, "failed": 0},
        "logTail": [{"pod": "p-1", "container": "main", "index": None, "text": "done\n", "truncated": False}],
        "cost": {
            "vcpuSeconds": 93.0,
            "gbSeconds": 148.8,
            "amount": 0.00123019,
            "currency": "USD",
            "billedSeconds": 93,
            "pendingSeconds": 29,
            "containerGroups": 1,
            "failedAttempts": {"vcpuSeconds": 0.0, "gbSeconds": 0.0, "amount": 0.0, "count": 0},
            "prices": {"currency": "USD", "vcpuSecond": "0.00001125", "gbSecond": "0.0000012361"},
            "indexes": None,
        },
    }
    data.update(overrides)
    return data


def test_every_schema_is_valid_draft_2020_12_and_named_by_dataschema() -> None:
    validator = _validator()
    for event_type in events.EVENT_TYPES:
        short = event_type.removeprefix(events.TYPE_PREFIX + ".")
        assert (SCHEMAS / f"{short}.v1.json").exists()
        doc = json.loads((SCHEMAS / f"{short}.v1.json").read_text())
        assert doc["$id"] == f"{events.DATA_SCHEMA_BASE}/{short}.v1.json"
    assert validator.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_job_succeeded_event() -> None:
    text = events.job_succeeded(
        source="/vnode-batch", job_uid="u-1", subject="order-42", finished_at=NOW, data=job_data()
    )
    event = validate_event(text)
    assert event["type"] == "io.vnodebatch.job.succeeded"
    assert event["time"] == "2026-11-27T01:02:03Z"
    assert event["subject"] == "order-42"
    assert event["dataschema"].endswith("/job.succeeded.v1.json")


def test_job_failed_event_with_indexes() -> None:
    data = job_data(
        outcome="failed",
        reason="FailedIndexes",
        exitCode=3,
        indexes={"completions": 5, "succeeded": "0-2,4", "failed": "3"},
        attempts={"succeeded": 4, "failed": 2},
    )
    event = validate_event(
        events.job_failed(source="/vnode-batch", job_uid="u-1", subject="k", finished_at=NOW, data=data)
    )
    assert event["data"]["indexes"]["failed"] == "3"


def test_a_missing_exit_code_is_null_with_its_reason() -> None:
    gap = {"reason": "NotReportedByProvider", "message": "the virtual node did not report the exit code of pod p"}
    event = validate_event(
        events.job_succeeded(
            source="/s",
            job_uid="u",
            subject="k",
            finished_at=NOW,
            data=job_data(exitCode=None, exitCodeUnavailable=gap),
        )
    )
    assert (event["data"]["exitCode"], event["data"]["exitCodeUnavailable"]["reason"]) == (
        None,
        "NotReportedByProvider",
    )


def test_provider_failure_is_classified_in_the_failed_event() -> None:
    failure = {"class": "quotaOrCapacity", "code": "ServiceUnavailable", "status": 409, "message": "not available"}
    data = job_data(outcome="failed", reason="ProviderFailed", exitCode=None, providerFailure=failure, logTail=[])
    data["exitCodeUnavailable"] = {"reason": "NoContainerExited", "message": "no container ran to an exit"}
    event = validate_event(events.job_failed(source="/s", job_uid="u", subject="k", finished_at=NOW, data=data))
    assert event["data"]["providerFailure"]["class"] == "quotaOrCapacity"
    bad = dict(data, providerFailure={**failure, "class": "weather"})
    with pytest.raises(AssertionError, match="weather"):
        validate_event(events.job_failed(source="/s", job_uid="u", subject="k", finished_at=NOW, data=bad))


def test_the_id_is_stable_per_job_and_outcome() -> None:
    def build(uid: str, ok: bool, log: str) -> str:
        fn = events.job_succeeded if ok else events.job_failed
        data = job_data(logTail=[{"pod": "p", "container": "main", "index": None, "text": log, "truncated": False}])
        if not ok:
            data.update(outcome="failed", reason="BackoffLimitExceeded", exitCode=1)
        return str(json.loads(fn(source="/s", job_uid=uid, subject="k", finished_at=NOW, data=data))["id"])

    assert build("u-1", True, "a") == build("u-1", True, "b")  # a re-sent event: same id
    assert build("u-1", True, "a") != build("u-2", True, "a")
    assert build("u-1", True, "a") != build("u-1", False, "a")


def test_wrong_data_is_refused_by_the_schema() -> None:
    bad = events.job_succeeded(
        source="/s", job_uid="u", subject="k", finished_at=NOW, data=job_data(reason="Whatever", extra=1)
    )
    with pytest.raises(AssertionError, match=r"extra|Completed"):
        validate_event(bad)


def test_huge_logs_are_cut_from_the_front_to_fit_one_message() -> None:
    tails = [
        {
            "pod": f"p-{i}",
            "container": "main",
            "index": i,
            "text": f"line {i}\n" * 5000 + "THE END\n",
            "truncated": False,
        }
        for i in range(3)
    ]
    data = job_data(outcome="failed", reason="FailedIndexes", exitCode=2, logTail=tails, message="m" * 1000)
    text = events.job_failed(source="/s", job_uid="u", subject="k", finished_at=NOW, data=data)
    event = validate_event(text)
    kept = event["data"]["logTail"]
    assert kept, "logs are shortened before they are dropped"
    assert all(t["text"].endswith("THE END\n") and t["truncated"] for t in kept)
    assert event["data"]["message"] == "m" * 1000  # the outcome is never cut for logs


def test_rejected_and_deadlettered_events_match_their_schemas() -> None:
    for body in (b'{"image": 3}', b"\xff\xfe binary", ("x" * 70_000).encode()):
        validate_event(
            events.request_rejected(
                source="/vnode-batch",
                message_id="m-1",
                body=body,
                errors=[FieldError("image", "expected a string")],
                now=NOW,
                dequeue_count=1,
            )
        )
        validate_event(
            events.request_deadlettered(
                source="/vnode-batch",
                body=body,
                now=NOW,
                reason="MaxDequeueCountExceeded",
                detail="failed 5 times",
                queue="vnb-requests-poison",
                key="k",
                correlation_id="c",
                poisoned_at=NOW,
            )
        )
        validate_event(
            events.request_deadlettered(
                source="/vnode-batch",
                body=body,
                now=NOW,
                reason="ClusterNotReady",
                detail="not ready",
                queue="vnb-requests",
                key="k",
                message_id="m-2",
                enqueued_at=NOW,
            )
        )
