"""``cli top --once`` against the local host: the frame an operator reads while one request runs
and another waits for ACI capacity (the whole budget is one container group), read from
GET /api/summary and GET /api/requests through the host's function-key check, with a teams file
so that each team's key sees its own row only."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.host import LocalHost
from shared.cli import main as cli
from tests.conftest import wait_for
from tests.integration.test_teams import IMAGE, KEYS, call, teams_file

pytestmark = pytest.mark.integration


@pytest.fixture
def host(make_runner: Callable[..., LocalHost], tmp_path: Path) -> Iterator[LocalHost]:
    with make_runner(
        VNB_TEAMS_FILE=str(teams_file(tmp_path / "teams.json")),
        VNB_EASY_AUTH="true",
        VNB_KEEP_FINISHED_SECONDS="0",
        VNB_CAPACITY_CONTAINER_GROUPS="1",
        VNB_CAPACITY_CACHE_SECONDS="0.01",
    ) as started:
        started.function_keys.update(KEYS)
        yield started


def top(capsys: pytest.CaptureFixture[str], host: LocalHost, who: str, *more: str) -> tuple[int, str, str]:
    code = cli.main(["top", "--once", "--api-url", host.http_url, "--function-key", KEYS.get(who, who), *more])
    out, err = capsys.readouterr()
    return code, out, err


def cells(out: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first``."""
    for line in out.splitlines():
        parts = [part.strip() for part in line.split("│")]
        if len(parts) > 2 and parts[1] == first:
            return parts[2:-1]
    raise AssertionError(f"no row {first!r} in:\n{out}")


def state_of(host: LocalHost, key: str) -> str:
    r = call(host, "GET", f"/api/requests/{key}", who="team-a")
    return str(r.json().get("state")) if r.status_code == 200 else f"HTTP {r.status_code}"


def test_top_once_shows_what_runs_what_waits_and_why(
    host: LocalHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich's width when stdout is not a terminal
    for key in ("top-run", "top-wait"):
        body = {"id": key, "image": IMAGE, "command": ["sh", "-c", "sleep 120"], "cpu": "1"}
        assert call(host, "POST", "/api/requests", who="team-a", json=body).status_code == 202
        if key == "top-run":
            wait_for(lambda: state_of(host, "top-run") == "running", what="the first Job to run")
    wait_for(lambda: state_of(host, "top-wait") == "waiting-for-capacity", what="the second to wait for capacity")

    code, out, err = top(capsys, host, "ops")
    assert code == 0, err
    assert "running 1   waiting 1 (waiting-for-capacity 1)   cost today" in out
    assert "1 / 1 (100%)" in out  # container groups: the whole budget is in use
    running, waiting, cores, groups = cells(out, "team-a")[:4]
    assert (running, waiting, cores, groups) == ("1", "1", "1/50+∞", "1/50+∞")
    assert cells(out, "team-b")[:2] == ["0", "0"]
    team, reason, _, place = cells(out, "top-wait")[:4]
    assert (team, reason, place) == ("team-a", "capacity", "1")

    # The same frame for scripts.
    code, out, _ = top(capsys, host, "ops", "--json")
    frame = json.loads(out)
    assert [w["id"] for w in frame["longestWaits"]] == ["top-wait"]
    assert frame["summary"]["capacity"]["groups"]["inUse"] == 1

    # Team b's key: its own row, none of team a's requests.
    code, out, _ = top(capsys, host, "team-b")
    assert code == 0
    assert cells(out, "team-b")[:2] == ["0", "0"]
    assert "team-a" not in out
    assert "top-wait" not in out

    # A wrong key: the host's 401, one line, the API commands' exit code.
    code, out, err = top(capsys, host, "not-a-key")
    assert (code, out) == (2, "")
    assert err.startswith("error 401")
