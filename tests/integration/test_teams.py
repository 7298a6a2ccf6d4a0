"""Teams through the local host (issue 22): a caller sees, lists and cancels only its teams'
requests (404 for another team's, never 403), an operator sees all; a queue request is checked
against its team's allowlists; the ledger records the team and who submitted.

The Easy Auth principal is the ``X-MS-CLIENT-PRINCIPAL`` header App Service injects (Microsoft
docs, "Work with user identities in Azure App Service authentication": Base64 JSON of
``{"auth_typ", "claims": [{"typ", "val"}], "name_typ", "role_typ"}``); here the test sends it, as
App Service would, with VNB_EASY_AUTH on.
"""

from __future__ import annotations

import base64
import collections
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from shared.adapters.tables import Tables
from shared.base.times import parse_time
from shared.capacity.admission import REFRESH_SHARE, Admission
from shared.cluster.gate import KubeconfigGate
from shared.config.settings import Settings
from shared.flows.dispatch import dispatch
from shared.flows.inbound import Inbound, Outcome
from shared.ledger.records import State, view
from shared.ledger.store import Ledger
from shared.teams.model import key_digest
from tests.conftest import wait_for
from tests.integration.conftest import Queues, race

pytestmark = pytest.mark.integration

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
NS = "vnode-batch"
KEYS = {"team-a": "key-of-team-a-0123456789", "team-b": "key-of-team-b-0123456789", "ops": "key-of-operators-012345"}
OID_B = "22222222-0000-0000-0000-00000000000b"


def teams_file(path: Path) -> Path:
    def team(name: str, **more: Any) -> dict[str, Any]:
        return {
            "name": name,
            "members": {"functionKeys": [key_digest(KEYS[name])], **more},
            "nominal": {"cores": 50, "containerGroups": 50},
            "registries": ["mcr.microsoft.com"],
        }

    body = {
        "version": 1,
        "teams": [team("team-a"), team("team-b", principals=[OID_B])],
        "operators": {"functionKeys": [key_digest(KEYS["ops"])]},
    }
    path.write_text(json.dumps(body))
    return path


@pytest.fixture
def host(make_runner: Callable[..., LocalHost], tmp_path: Path) -> Iterator[LocalHost]:
    with make_runner(
        VNB_TEAMS_FILE=str(teams_file(tmp_path / "teams.json")), VNB_EASY_AUTH="true", VNB_KEEP_FINISHED_SECONDS="0"
    ) as started:
        started.function_keys.update(KEYS)
        yield started


def call(host: LocalHost, method: str, path: str, *, who: str, **kwargs: Any) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}))
    if who in KEYS:
        headers["x-functions-key"] = KEYS[who]
    else:  # a signed-in principal (Easy Auth) with the app's default key
        headers["x-functions-key"] = host.function_keys["default"]
        claims = {"auth_typ": "aad", "claims": [{"typ": "oid", "val": who}], "name_typ": "name", "role_typ": "roles"}
        headers["X-MS-CLIENT-PRINCIPAL"] = base64.b64encode(json.dumps(claims).encode()).decode()
    return requests.request(method, f"{host.http_url}{path}", headers=headers, timeout=30, **kwargs)


def test_a_team_sees_and_cancels_only_its_own_requests(host: LocalHost) -> None:
    body = {"id": "team-a-1", "image": IMAGE, "command": ["sh", "-c", "sleep 30"]}
    r = call(host, "POST", "/api/requests", who="team-a", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["team"] == "team-a"
    assert r.json()["submittedBy"] == "key:" + key_digest(KEYS["team-a"])[:12]
    # Team b, by key or as a signed-in member: the request does not exist for it.
    for who in ("team-b", OID_B):
        assert call(host, "GET", "/api/requests/team-a-1", who=who).status_code == 404
        assert call(host, "DELETE", "/api/requests/team-a-1", who=who).status_code == 404
        listing = call(host, "GET", "/api/requests", who=who)
        assert listing.status_code == 200
        assert listing.json()["items"] == []
    # Team b may not submit for team a either (the team comes from the caller, not the body).
    r = call(host, "POST", "/api/requests", who="team-b", json={**body, "id": "b-as-a", "team": "team-a"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "team"
    # A signed-in principal of no team gets 403 on submit, and sees nothing.
    assert call(host, "POST", "/api/requests", who="33333333-0000-0000-0000-000000000000", json=body).status_code == 403
    # The owner and an operator see it; the owner's listing has it.
    assert call(host, "GET", "/api/requests/team-a-1", who="team-a").status_code == 200
    assert call(host, "GET", "/api/requests/team-a-1", who="ops").json()["team"] == "team-a"
    mine = call(host, "GET", "/api/requests", who="team-a", params={"team": "team-a"}).json()["items"]
    assert [i["id"] for i in mine] == ["team-a-1"]
    # Team a's request still runs after team b's attempts, and its team cancels it.
    wait_for(
        lambda: call(host, "GET", "/api/requests/team-a-1", who="team-a").json()["state"] != "received", what="dispatch"
    )
    assert call(host, "DELETE", "/api/requests/team-a-1", who="team-a").json()["state"] == "cancelled"


def test_a_queue_request_is_rejected_for_what_its_team_may_not_use(queues: Queues, host: LocalHost) -> None:
    queues.submit({"id": "q-registry", "team": "team-a", "image": "docker.io/library/busybox:1.36"})
    queues.submit({"id": "q-priority", "team": "team-a", "image": IMAGE, "priority": "urgent"})
    queues.submit({"id": "q-no-team", "image": IMAGE})
    queues.submit({"id": "q-unknown", "team": "team-z", "image": IMAGE})
    host.run_until_idle()
    events = {e["data"]["requestKey"]: e for e in queues.drain_events()}
    assert sorted(events) == ["q-no-team", "q-priority", "q-registry", "q-unknown"]
    for key, field in (
        ("q-registry", "image"),
        ("q-priority", "priority"),
        ("q-no-team", "team"),
        ("q-unknown", "team"),
    ):
        data = events[key]["data"]
        assert events[key]["type"] == "io.vnodebatch.request.rejected"
        assert data["reason"] == "NotAllowedForTeam", data
        assert [e["field"] for e in data["errors"]] == [field]
    assert call(host, "GET", "/api/requests/q-registry", who="ops").json()["state"] == "rejected"


# --- capacity between teams: direct dispatch calls over Azurite and the stand-in ---------------


def settings_with(app_env: dict[str, str], tmp_path: Path, teams: list[dict[str, Any]], **more: str) -> Settings:
    path = tmp_path / "teams-capacity.json"
    path.write_text(json.dumps({"version": 1, "teams": teams}))
    return Settings.from_env({**app_env, "VNB_TEAMS_FILE": str(path), **more})


def team(name: str, nominal: int, borrow: int, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "nominal": {"cores": nominal, "containerGroups": nominal},
        "borrowingLimit": {"cores": borrow, "containerGroups": borrow},
        **more,
    }


def sleeper(key: str, team_name: str, **extra: Any) -> bytes:
    body = {"id": key, "team": team_name, "image": IMAGE, "command": ["sh", "-c", "sleep 600"], "cpu": "1", **extra}
    return json.dumps(body).encode()


def test_two_racing_dispatchers_keep_each_team_within_its_share(
    app_env: dict[str, str], kube: KubeStandIn, tmp_path: Path
) -> None:
    # Team a floods first; neither team may borrow, so however the two instances race (each
    # with its own per-process view), a holds at most its nominal share plus the documented
    # slack (one refresh share of the budget per other instance) and b gets the rest.
    budget = 20
    settings = settings_with(
        app_env,
        tmp_path,
        [team("team-a", 10, 0), team("team-b", 10, 0)],
        VNB_CAPACITY_CONTAINER_GROUPS=str(budget),
        VNB_CAPACITY_CACHE_SECONDS="60",
    )
    gate = KubeconfigGate(settings)
    messages = [Inbound(message_id=f"a-{i}", body=sleeper(f"race-a-{i}", "team-a")) for i in range(30)]
    messages += [Inbound(message_id=f"b-{i}", body=sleeper(f"race-b-{i}", "team-b")) for i in range(30)]
    created = collections.Counter(
        "team-" + m.message_id[0]
        for m, outcome in race(messages, settings=settings, gate=gate)
        if outcome == Outcome.CREATED
    )
    slack = max(1, round(budget * REFRESH_SHARE))
    assert 10 <= created["team-a"] <= 10 + slack
    assert 10 - slack <= created["team-b"] <= 10 + slack
    labels = collections.Counter(j["metadata"]["labels"]["vnode-batch.io/team"] for j in kube.jobs(NS))
    assert labels == collections.Counter(created)
    assert sum(kube.aci.counters.creates_refused.values()) == 0


def test_a_waiting_request_shows_its_position_and_estimated_start_and_both_are_updated(
    app_env: dict[str, str], kube: KubeStandIn, tmp_path: Path
) -> None:
    settings = settings_with(
        app_env,
        tmp_path,
        [team("team-a", 2, 0, priorities=["normal", "high"])],
        VNB_CAPACITY_CONTAINER_GROUPS="2",
        VNB_CAPACITY_CACHE_SECONDS="0.01",
    )
    gate = KubeconfigGate(settings)
    ledger = Ledger(Tables(settings))
    admission = Admission(settings)

    def send(key: str, **extra: Any) -> Outcome:
        body = sleeper(key, "team-a", timeoutSeconds=900, **extra)
        result = dispatch(
            Inbound(message_id=f"m-{key}", body=body),
            settings=settings,
            gate=gate,
            requeue=lambda text, delay: None,
            admission=admission,
            ledger=ledger,
        )
        return result.outcome

    assert [send("eta-1"), send("eta-2")] == [Outcome.CREATED, Outcome.CREATED]
    assert send("eta-3") == Outcome.DEFERRED
    first = ledger.get("eta-3")
    assert first is not None
    assert first.state == State.WAITING_FOR_CAPACITY
    queue = first.queue or {}
    assert (queue["position"], queue["teamPosition"], queue["teamWaiting"]) == (1, 1, 1)
    # Two Jobs of 1 core run with a 900 s deadline and none has finished: it may start when the
    # first of them reaches its deadline.
    assert "deadline" in queue["estimatedBy"]
    started = min(parse_time(j["status"].get("startTime") or j["metadata"]["creationTimestamp"]) for j in kube.jobs(NS))
    estimated = parse_time(queue["estimatedStartAt"])
    assert started is not None
    assert estimated is not None
    assert abs((estimated - started).total_seconds() - 900) <= 2
    # A request of higher priority of the same team now waits ahead of it: its place is updated.
    assert send("eta-urgent", priority="high") == Outcome.DEFERRED
    assert send("eta-3") == Outcome.DEFERRED
    again = ledger.get("eta-3")
    assert again is not None
    assert (again.queue or {})["teamPosition"] == 2
    assert view(again)["queue"]["teamPosition"] == 2
