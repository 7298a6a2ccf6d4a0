"""GET /api/summary through the local host (issue 22): per team, what runs and waits and what its
pods hold against its share; a team's key sees its own row only, an operator every team's; the
body matches docs/openapi.yaml."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.host import LocalHost
from shared.cli import main as cli
from tests.conftest import wait_for
from tests.integration.test_api_http import documented
from tests.integration.test_teams import IMAGE, KEYS, call, host  # noqa: F401 - `host` is a fixture

pytestmark = pytest.mark.integration


def summary(host: LocalHost, who: str, **params: str) -> dict[str, Any]:  # noqa: F811
    r = call(host, "GET", "/api/summary", who=who, params=params)
    assert r.status_code == 200, r.text
    return documented(r, "/api/summary", "get")


def rows(body: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {row["team"]: row for row in body["teams"]}


def test_each_team_sees_its_own_running_and_held_cores_and_an_operator_sees_all(
    host: LocalHost,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = {"id": "sum-a-1", "image": IMAGE, "command": ["sh", "-c", "sleep 60"], "cpu": "1"}
    assert call(host, "POST", "/api/requests", who="team-a", json=body).status_code == 202

    def running() -> bool:
        a = rows(summary(host, "team-a")).get("team-a") or {}
        return a.get("running") == 1 and a["cores"]["inUse"] >= 1

    wait_for(running, what="team a's Job to hold its core")
    mine = summary(host, "team-a")
    assert list(rows(mine)) == ["team-a"]
    a = rows(mine)["team-a"]
    assert a["waiting"] == 0
    assert a["cores"] == {"inUse": 1.0, "share": 50.0, "borrowLimit": None}
    assert a["groups"] == {"inUse": 1, "share": 50, "borrowLimit": None}
    assert mine["capacity"]["cores"]["inUse"] == 1.0
    # Team b sees its own (empty) row and the app's capacity in use, nothing of team a's requests.
    theirs = summary(host, "team-b")
    assert list(rows(theirs)) == ["team-b"]
    assert rows(theirs)["team-b"]["running"] == 0
    assert rows(theirs)["team-b"]["cores"]["inUse"] == 0
    assert theirs["capacity"]["groups"]["inUse"] == 1
    # The operator sees both teams; so does `cli summary` with the operators' key.
    assert list(rows(summary(host, "ops"))) == ["team-a", "team-b"]
    code = cli.main(["summary", "--api-url", host.http_url, "--function-key", KEYS["ops"]])
    table = capsys.readouterr().out.splitlines()
    assert code == 0
    assert table[1].split()[:5] == ["team-a", "1", "0", "1/50+∞", "1/50+∞"]
    assert table[2].split()[:5] == ["team-b", "0", "0", "0/50+∞", "0/50+∞"]
    # Cancelled: it shows in the window's finished counts, and its core is given back.
    assert call(host, "DELETE", "/api/requests/sum-a-1", who="team-a").status_code == 200

    def given_back() -> bool:
        a = rows(summary(host, "team-a"))["team-a"]
        return a["running"] == 0 and a["finished"]["cancelled"] == 1 and a["cores"]["inUse"] == 0

    wait_for(given_back, what="the cancelled Job's core to be free")
    # A window that starts after the cancel counts nothing finished.
    later = summary(host, "team-a", since="2999-01-01T00:00:00Z")
    assert rows(later)["team-a"]["finished"]["cancelled"] == 0


def test_a_bad_window_or_an_unknown_parameter_is_a_clear_400(host: LocalHost) -> None:  # noqa: F811
    for params in ({"since": "yesterday"}, {"team": "team-a"}):
        r = call(host, "GET", "/api/summary", who="team-a", params=params)
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["field"] == next(iter(params))
