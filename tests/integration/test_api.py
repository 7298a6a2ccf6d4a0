"""The requests API service (what functions/api.py serves) over Azurite and the Kubernetes
stand-in, every response checked against docs/openapi.yaml.

Through-the-host tests (HTTP on loopback, function keys, schemathesis) wait for the local host
that drives the app through azure-functions-runtime (devtools/host/, on another branch).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from shared.adapters.kube import Cluster, from_kubeconfig_file
from shared.adapters.queues import Queues as AppQueues
from shared.adapters.tables import Tables
from shared.cluster.readiness import Readiness
from shared.config.settings import Settings
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound, Outcome
from shared.flows.reconcile import KubeJobs, reconcile
from shared.intake.request import MAX_BODY_BYTES
from shared.job.render import job_name
from shared.ledger.api import ApiResponse, RequestsApi
from shared.ledger.records import State
from shared.ledger.store import Ledger
from tests.conftest import REPO, wait_for
from tests.integration.conftest import Queues, drain
from tests.integration.test_dispatch import condition
from tests.unit.flows.test_reconcile_events import validate_event
from tests.unit.intake.test_request import MALFORMED

pytestmark = pytest.mark.integration

NS = "vnode-batch"
IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
OPENAPI = REPO / "docs" / "openapi.yaml"
BASE = "https://vnode-batch.dev/openapi.yaml"


# --- the OpenAPI document and response conformance -------------------------------------------


@cache
def spec() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(OPENAPI.read_text())
    return doc


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    validate_spec(spec(), base_uri=OPENAPI.as_uri())


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def conforms(response: ApiResponse, path: str, method: str) -> dict[str, Any]:
    """Assert ``response`` is one the document allows for this operation; return its body."""
    responses = spec()["paths"][path][method]["responses"]
    status = str(response.status)
    assert status in responses, f"{method.upper()} {path}: {status} is not documented"
    declared = responses[status]
    pointer: tuple[str, ...] = ("paths", path, method, "responses", status)
    if "$ref" in declared:
        name = declared["$ref"].rsplit("/", 1)[1]
        declared = spec()["components"]["responses"][name]
        pointer = ("components", "responses", name)
    content = declared.get("content") or {}
    assert response.content_type in content, f"{status}: {response.content_type} not documented"
    registry: Registry[Any] = Registry().with_resource(BASE, DRAFT202012.create_resource(spec()))
    schema = {"$ref": BASE + _pointer(*pointer, "content", response.content_type, "schema")}
    errors = list(Draft202012Validator(schema, registry=registry).iter_errors(response.body))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    if response.content_type == "application/problem+json":
        assert response.body is not None
        assert response.body["status"] == response.status
        assert "Traceback" not in response.text()
    assert response.body is not None
    return response.body


# --- fixtures -------------------------------------------------------------------------------


class Gate:
    def __init__(self, cluster: Cluster | None) -> None:
        self.cluster = cluster

    def check(self) -> Readiness:
        return Readiness(cluster=self.cluster, reason="" if self.cluster else "cluster Creating")


@pytest.fixture
def settings(app_env: dict[str, str]) -> Settings:
    return Settings.from_env({**app_env, "VNB_KEEP_FINISHED_SECONDS": "0"})


@pytest.fixture
def cluster(settings: Settings) -> Cluster:
    return Cluster(from_kubeconfig_file(settings.kubeconfig or "", context=None, timeout=5), NS)


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger(Tables(settings))


@pytest.fixture
def api(settings: Settings, ledger: Ledger, cluster: Cluster, queues: Queues) -> Iterator[RequestsApi]:
    app_queues = AppQueues(settings)
    return RequestsApi(
        settings=settings,
        ledger=ledger,
        enqueue=lambda text: app_queues.send(settings.requests_queue, text),
        send_event=app_queues.send_event,
        cluster=lambda: cluster,
    )


def run_dispatch(queues: Queues, settings: Settings, ledger: Ledger, gate: Gate) -> list[Outcome]:
    """What the dispatch function does with each queued message (one delivery each)."""
    outcomes = []
    for text in drain(queues.requests):
        result = dispatch(
            Inbound(message_id="m-" + str(len(outcomes)), body=text.encode()),
            settings=settings,
            gate=gate,
            requeue=lambda t, d: queues.requests.send_message(t),
            ledger=ledger,
        )
        outcomes.append(result.outcome)
    return outcomes


def events_of(queues: Queues) -> list[dict[str, Any]]:
    return [validate_event(t) for t in drain(queues.events)]


# --- submit ---------------------------------------------------------------------------------


def test_submit_returns_202_with_location_and_is_idempotent(api: RequestsApi, queues: Queues) -> None:
    body = json.dumps({"id": "inv-2026-11-27", "image": IMAGE, "labels": {"team": "billing"}}).encode()
    first = api.submit(body, content_type="application/json")
    record = conforms(first, "/api/requests", "post")
    assert first.status == 202
    assert first.headers["Location"] == "/api/requests/inv-2026-11-27"
    assert (record["id"], record["state"], record["source"]) == ("inv-2026-11-27", "received", "api")
    again = api.submit(body)
    assert again.status == 202
    assert conforms(again, "/api/requests", "post")["receivedAt"] == record["receivedAt"]
    # Enqueued for the first POST, and again for the retry while still "received" (harmless).
    texts = drain(queues.requests)
    assert {json.loads(t)["id"] for t in texts} == {"inv-2026-11-27"}


def test_submit_without_id_gets_one(api: RequestsApi, queues: Queues) -> None:
    response = api.submit(json.dumps({"image": IMAGE}).encode())
    record = conforms(response, "/api/requests", "post")
    assert response.headers["Location"] == f"/api/requests/{record['id']}"
    [text] = drain(queues.requests)
    assert json.loads(text)["id"] == record["id"]


def test_reused_id_with_other_content_is_409(api: RequestsApi) -> None:
    api.submit(json.dumps({"id": "dup-9", "image": IMAGE}).encode())
    response = api.submit(json.dumps({"id": "dup-9", "image": IMAGE, "command": ["x"]}).encode())
    problem = conforms(response, "/api/requests", "post")
    assert response.status == 409
    assert problem["errors"][0]["field"] == "id"


@pytest.mark.parametrize(("case", "body", "field", "phrase"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_bad_bodies_are_400_with_the_rejection_events_field_errors(
    api: RequestsApi, settings: Settings, case: str, body: bytes, field: str, phrase: str
) -> None:
    response = api.submit(body)
    problem = conforms(response, "/api/requests", "post")
    assert response.status == (413 if len(body) > MAX_BODY_BYTES else 400), case
    # The queue path's rejection event for the same body carries the same errors.
    result = dispatch(Inbound(message_id="m", body=body), settings=settings, gate=Gate(None), requeue=lambda t, d: None)
    if result.outcome == Outcome.REJECTED and response.status == 400:
        event = json.loads(result.events[0])
        assert problem["errors"] == event["data"]["errors"], case
    assert field in [e["field"] for e in problem["errors"]] or response.status == 413


def test_oversize_and_wrong_media_type(api: RequestsApi) -> None:
    big = json.dumps({"image": IMAGE, "args": ["x" * (MAX_BODY_BYTES + 10)]}).encode()
    response = api.submit(big)
    assert conforms(response, "/api/requests", "post")["status"] == 413
    response = api.submit(b"image: x", content_type="application/yaml")
    assert conforms(response, "/api/requests", "post")["status"] == 415


# --- status and list ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "-lead", "x" * 200, "ünïcode", "a%2Fb"])
def test_bad_ids_in_the_path_are_400(api: RequestsApi, bad: str) -> None:
    for response, method in ((api.status(bad), "get"), (api.cancel(bad), "delete")):
        assert conforms(response, "/api/requests/{id}", method)["status"] == 400


def test_unknown_id_is_404(api: RequestsApi) -> None:
    for response, method in ((api.status("nope-1"), "get"), (api.cancel("nope-1"), "delete")):
        problem = conforms(response, "/api/requests/{id}", method)
        assert (problem["status"], problem["instance"]) == (404, "/api/requests/nope-1")


def test_list_filters_by_state_label_and_since_with_paging(api: RequestsApi, ledger: Ledger) -> None:
    for i in range(5):
        team = "billing" if i % 2 == 0 else "search"
        api.submit(json.dumps({"id": f"l-{i}", "image": IMAGE, "labels": {"team": team}}).encode())
    ledger.move("l-0", State.WAITING_FOR_CLUSTER, datetime.now(UTC))
    billing = conforms(api.list({"label": "team=billing"}), "/api/requests", "get")
    assert sorted(r["id"] for r in billing["items"]) == ["l-0", "l-2", "l-4"]
    waiting = conforms(api.list({"state": "waiting-for-cluster"}), "/api/requests", "get")
    assert [r["id"] for r in waiting["items"]] == ["l-0"]
    both = conforms(api.list({"state": "received", "label": "team=billing"}), "/api/requests", "get")
    assert sorted(r["id"] for r in both["items"]) == ["l-2", "l-4"]
    assert conforms(api.list({"since": "2999-01-01T00:00:00Z"}), "/api/requests", "get")["items"] == []
    seen: list[str] = []
    token: str | None = None
    while True:
        page = conforms(api.list({"limit": "2", **({"pageToken": token} if token else {})}), "/api/requests", "get")
        assert len(page["items"]) <= 2
        seen += [r["id"] for r in page["items"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert sorted(seen) == [f"l-{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "sleeping"}, "state"),
        ({"label": "team"}, "label"),
        ({"label": "bad key!=x"}, "label"),
        ({"since": "yesterday"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "10000"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"pageToken": "not-a-token"}, "pageToken"),
        ({"pageToken": "%%%"}, "pageToken"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_query_parameters_are_400(api: RequestsApi, params: dict[str, str], field: str) -> None:
    problem = conforms(api.list(params), "/api/requests", "get")
    assert problem["status"] == 400
    assert field in [e["field"] for e in problem["errors"]]


# --- cancel in every state ------------------------------------------------------------------


def test_cancel_received_never_runs(
    api: RequestsApi, queues: Queues, settings: Settings, ledger: Ledger, cluster: Cluster, kube: KubeStandIn
) -> None:
    api.submit(json.dumps({"id": "c-recv", "image": IMAGE, "correlationId": "corr-1"}).encode())
    response = api.cancel("c-recv")
    assert conforms(response, "/api/requests/{id}", "delete")["state"] == "cancelled"
    assert run_dispatch(queues, settings, ledger, Gate(cluster)) == [Outcome.CANCELLED]
    assert kube.jobs(NS) == []
    [event] = events_of(queues)
    assert event["type"] == "io.vnodebatch.request.cancelled"
    assert (event["data"]["state"], event["data"]["correlationId"]) == ("received", "corr-1")
    again = api.cancel("c-recv")  # repeatable
    assert again.status == 200
    assert again.body is not None
    assert again.body["outcome"]["eventId"] == event["id"]  # the ledger notes the event it sent
    assert events_of(queues) == []  # and a repeat sends no second one


def test_cancel_waiting_for_cluster_never_runs(
    api: RequestsApi, queues: Queues, settings: Settings, ledger: Ledger, cluster: Cluster, kube: KubeStandIn
) -> None:
    api.submit(json.dumps({"id": "c-wait", "image": IMAGE}).encode())
    assert run_dispatch(queues, settings, ledger, Gate(None)) == [Outcome.DEFERRED]
    assert conforms(api.status("c-wait"), "/api/requests/{id}", "get")["state"] == "waiting-for-cluster"
    assert api.cancel("c-wait").status == 200
    assert run_dispatch(queues, settings, ledger, Gate(cluster)) == [Outcome.CANCELLED]
    assert kube.jobs(NS) == []
    [event] = events_of(queues)
    assert (event["type"], event["data"]["state"]) == ("io.vnodebatch.request.cancelled", "waiting-for-cluster")


@pytest.mark.parametrize("when", ["submitted", "running"])
def test_cancel_a_job_deletes_it_and_reports_what_ran_once(
    when: str,
    api: RequestsApi,
    queues: Queues,
    settings: Settings,
    ledger: Ledger,
    cluster: Cluster,
    kube: KubeStandIn,
) -> None:
    key = f"c-{when}"
    api.submit(json.dumps({"id": key, "image": IMAGE, "command": ["sh", "-c", "sleep 30"]}).encode())
    assert run_dispatch(queues, settings, ledger, Gate(cluster)) == [Outcome.CREATED]
    if when == "running":
        # Running = its container started: while ACI creates the group the pod shows no
        # container state (the stand-in's virtual node, as azure-aci), and nothing is billed yet.
        wait_for(
            lambda: any(
                (cs.get("state") or {}).get("running")
                for p in kube.pods(NS)
                for cs in (p.get("status") or {}).get("containerStatuses") or []
            ),
            what="a pod whose container runs",
        )
        reconcile(settings=settings, jobs=KubeJobs(cluster), send_event=lambda t: None, ledger=ledger)
        assert conforms(api.status(key), "/api/requests/{id}", "get")["state"] == "running"
    record = conforms(api.cancel(key), "/api/requests/{id}", "delete")
    assert record["state"] == "cancelled"
    [event] = events_of(queues)
    assert event["type"] == "io.vnodebatch.job.cancelled"
    assert event["data"]["state"] == when
    assert event["data"]["jobName"] == job_name(key, settings=settings)
    if when == "running":
        assert event["data"]["ran"]["active"] >= 1
        assert event["data"]["startedAt"]
        # what its container group ran until the cancel, in the event and in the ledger
        cost = event["data"]["cost"]
        assert cost["containerGroups"] == 1
        assert cost["currency"] == settings.price_currency
        stored = ledger.get(key)
        assert stored is not None
        assert stored.outcome is not None
        assert stored.outcome["cost"]["amount"] == cost["amount"]
    # The Job is Terminating (its report finalizer); the reconciler releases it without a
    # second outcome event.
    sent: list[str] = []
    wait_for(
        lambda: (
            reconcile(settings=settings, jobs=KubeJobs(cluster), send_event=sent.append, ledger=ledger)
            and not kube.jobs(NS)
        ),
        what="the cancelled Job to be gone",
    )
    assert sent == []
    assert ledger.get(key).state == State.CANCELLED  # type: ignore[union-attr]


def test_cancel_finished_is_409(
    api: RequestsApi, queues: Queues, settings: Settings, ledger: Ledger, cluster: Cluster, kube: KubeStandIn
) -> None:
    api.submit(json.dumps({"id": "c-done", "image": IMAGE, "command": ["sh", "-c", "echo hi"]}).encode())
    run_dispatch(queues, settings, ledger, Gate(cluster))
    wait_for(lambda: condition(kube.job(NS, job_name("c-done", settings=settings)) or {}), what="the Job to finish")
    reconcile(settings=settings, jobs=KubeJobs(cluster), send_event=lambda t: None, ledger=ledger)
    response = api.cancel("c-done")
    problem = conforms(response, "/api/requests/{id}", "delete")
    assert (problem["status"], problem["state"]) == (409, "succeeded")


# --- the API path and the queue path agree ----------------------------------------------------


def test_api_and_queue_paths_give_the_same_outcome(
    make_runner: Callable[..., LocalHost], api: RequestsApi, queues: Queues, ledger: Ledger
) -> None:
    request = {"image": IMAGE, "command": ["sh", "-c", "echo same; exit 3"], "correlationId": "same"}
    queues.submit({**request, "id": "via-queue"})
    assert api.submit(json.dumps({**request, "id": "via-api"}).encode()).status == 202
    seen: list[dict[str, Any]] = []

    def both() -> bool:
        seen.extend(events_of(queues))
        return len(seen) >= 2

    with make_runner(VNB_KEEP_FINISHED_SECONDS="0") as runner:
        wait_for(both, what="both outcomes")
        runner.run_until_idle()
    by_key = {e["data"]["requestKey"]: e for e in seen}
    assert set(by_key) == {"via-queue", "via-api"}
    keep = ("outcome", "reason", "exitCode", "correlationId")
    assert {k: by_key["via-api"]["data"][k] for k in keep} == {k: by_key["via-queue"]["data"][k] for k in keep}
    assert by_key["via-api"]["type"] == by_key["via-queue"]["type"] == "io.vnodebatch.job.failed"
    a, q = ledger.get("via-api"), ledger.get("via-queue")
    assert a is not None
    assert q is not None
    assert (a.state, (a.outcome or {}).get("reason")) == (q.state, (q.outcome or {}).get("reason"))
    assert (a.source, q.source) == ("api", "queue")


def test_status_never_shows_env_values(api: RequestsApi) -> None:
    secret = "tok-5e3b-never-shown"
    api.submit(json.dumps({"id": "env-1", "image": IMAGE, "env": {"TOKEN": secret}}).encode())
    response = api.status("env-1")
    assert secret not in response.text()
    assert secret not in api.list({}).text()


def test_the_functions_map_responses_onto_http(tmp_path: Path) -> None:
    from functions.api import _reply

    reply = _reply(
        ApiResponse(404, {"type": "t", "title": "x", "status": 404, "detail": "d"}, {}, "application/problem+json")
    )
    assert reply.status_code == 404
    assert reply.mimetype == "application/problem+json"
    assert json.loads(reply.get_body())["status"] == 404
