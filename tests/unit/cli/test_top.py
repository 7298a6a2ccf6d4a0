"""``cli top``: the figures an operator reads in a frame, formatted from the summary contract
(docs/openapi.yaml ``Summary``); no network (the frame from a real local host is in
tests/integration/test_cli_top.py)."""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rich.console import Console

from shared.base.times import iso
from shared.cli import top
from shared.cli.main import main as cli_main
from tests.conftest import REPO

AT = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
SUMMARY: dict[str, Any] = {
    "at": "2026-12-07T02:00:00.000Z",
    "capacity": {"cores": {"inUse": 40.0, "budget": 100.0}, "groups": {"inUse": 20, "budget": 100}, "waiting": 12},
    "teams": [
        {
            "team": "ml",
            "running": 3,
            "waiting": 5,
            "waitingByReason": {"waiting-for-capacity": 5},
            "cores": {"inUse": 12.0, "share": 50.0, "borrowLimit": 20.0},
            "groups": {"inUse": 6, "share": 50, "borrowLimit": 20},
            "finished": {"succeeded": 10, "failed": 1, "cancelled": 0, "rejected": 0, "deadlettered": 0},
            "cost": {"amount": 1.23, "currency": "USD"},
        },
        {
            "team": "billing",
            "running": 1,
            "waiting": 7,
            "waitingByReason": {"waiting-for-capacity": 4, "waiting-for-cluster": 3},
            "cores": {"inUse": 28.0, "share": 50.0, "borrowLimit": None},
            "groups": {"inUse": 14, "share": 50, "borrowLimit": None},
            "finished": {"succeeded": 2, "failed": 0, "cancelled": 1, "rejected": 0, "deadlettered": 2},
            "cost": {"amount": 10.5, "currency": "USD"},
        },
    ],
}


def record(key: str, state: str, waited: timedelta, **extra: Any) -> dict[str, Any]:
    received = (AT - waited).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"id": key, "state": state, "receivedAt": received, **extra}


def text_of(frame: top.Frame, **kwargs: Any) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(top.render(frame, source="http://127.0.0.1:7071", **kwargs))
    return console.export_text()


def frame(**kwargs: Any) -> top.Frame:
    return top.Frame(summary=SUMMARY, waits=(), since="2026-12-07T00:00:00Z", **kwargs)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (200, "3m20s"), (7500, "2h05m"), (3 * 86400 + 4 * 3600, "3d04h")],
)
def test_duration(seconds: float, shown: str) -> None:
    assert top.duration(seconds) == shown


def test_figures() -> None:
    assert (top.number(None), top.number(20), top.number(40.0), top.number(12.5), top.number(0.125)) == (
        "-",
        "20",
        "40",
        "12.5",
        "0.12",
    )
    assert top.usage(40.0, 100.0) == "40 / 100 (40%)"
    assert top.usage(3, None) == "3"
    assert top.usage(3, 0) == "3"
    assert top.team_share({"inUse": 12.0, "share": 50.0, "borrowLimit": 20.0}) == "12/50+20"
    assert top.team_share({"inUse": 12.0, "share": 50.0, "borrowLimit": None}) == "12/50+∞"  # up to the budget
    assert top.team_share({"inUse": 2, "share": None, "borrowLimit": None}) == "2"  # no teams file
    assert top.money({"amount": 1234.5, "currency": "USD"}) == "1,234.50 USD"
    assert top.money(None) == "-"
    assert top.finished_text({"succeeded": 10, "failed": 1, "cancelled": 0}) == "10 ok, 1 failed"
    assert top.finished_text({}) == "-"


def test_totals_over_the_teams() -> None:
    assert top.waiting_by_reason(SUMMARY["teams"]) == {"waiting-for-capacity": 9, "waiting-for-cluster": 3}
    assert top.total_cost(SUMMARY["teams"]) == {"amount": 11.73, "currency": "USD"}


def test_today_starts_at_midnight_utc() -> None:
    assert iso(top.start_of_day(datetime(2026, 12, 7, 23, 59, tzinfo=UTC))) == "2026-12-07T00:00:00Z"
    # 00:30 in UTC+02:00 is still the 6th in UTC.
    east = datetime.fromisoformat("2026-12-07T00:30:00+02:00")
    assert iso(top.start_of_day(east)) == "2026-12-06T00:00:00Z"


def test_longest_waits_are_the_oldest_received_measured_on_the_server_clock() -> None:
    records = [
        record("short", "waiting-for-capacity", timedelta(seconds=30)),
        record("longest", "waiting-for-cluster", timedelta(hours=2, minutes=5), team="ml"),
        record("middle", "waiting-for-capacity", timedelta(minutes=3), queue={"position": 2, "waiting": 9}),
        {"id": "no-time", "state": "waiting-for-capacity"},
    ]
    waits = top.longest_waits(records, at=AT, limit=2)
    assert [(w.id, w.reason, top.duration(w.seconds)) for w in waits] == [
        ("longest", "waiting-for-cluster", "2h05m"),
        ("middle", "waiting-for-capacity", "3m00s"),
    ]
    assert waits[0].team == "ml"
    assert waits[1].position == 2


def test_a_frame_shows_what_the_status_page_shows() -> None:
    waits = top.longest_waits(
        [
            record(
                "train-7",
                "waiting-for-capacity",
                timedelta(minutes=42),
                team="ml",
                queue={"position": 1, "estimatedStartAt": "2026-12-07T02:10:00Z"},
            )
        ],
        at=AT,
        limit=5,
    )
    text = text_of(top.Frame(summary=SUMMARY, waits=waits, since="2026-12-07T00:00:00Z"))
    assert "at 2026-12-07T02:00:00.000Z" in text
    assert "running 4" in text
    assert "waiting 12 (waiting-for-capacity 9, waiting-for-cluster 3)" in text
    assert "cost today 11.73 USD" in text
    assert "finished and cost: today (UTC)" in text
    assert "40 / 100 (40%)" in text  # cores
    assert "20 / 100 (20%)" in text  # container groups
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 5}
    assert [c.strip() for c in rows["ml"].split("│")[2:-1]] == [
        "3",
        "5",
        "12/50+20",
        "6/50+20",
        "10 ok, 1 failed",
        "1.23 USD",
    ]
    assert [c.strip() for c in rows["billing"].split("│")[2:-1]] == [
        "1",
        "7",
        "28/50+∞",
        "14/50+∞",
        "2 ok, 1 cancelled, 2 deadlettered",
        "10.50 USD",
    ]
    assert [c.strip() for c in rows["train-7"].split("│")[2:-1]] == [
        "ml",
        "capacity",
        "42m00s",
        "1",
        "2026-12-07T02:10:00Z",
    ]


def test_a_frame_without_teams_file_or_waits() -> None:
    summary = {
        "at": "2026-12-07T02:00:00.000Z",
        "capacity": {"cores": {"inUse": 0.0, "budget": 100.0}, "groups": {"inUse": 0, "budget": 100}, "waiting": 0},
        "teams": [],
    }
    text = text_of(top.Frame(summary=summary, waits=(), since="2026-12-07T00:00:00Z"))
    assert "running 0   waiting 0   cost today 0.00 USD" in text
    assert "longest waits" not in text


def test_the_live_view_says_when_a_refresh_failed_and_keeps_the_last_frame() -> None:
    text = text_of(frame(), interval=5.0, error="HTTP 503 Service unavailable")
    assert "(every 5 s, Ctrl-C to quit)" in text
    assert "last refresh failed: HTTP 503 Service unavailable (showing the frame before)" in text
    assert "40 / 100 (40%)" in text


def test_a_cut_short_list_is_said() -> None:
    waits = (top.Wait(id="a", team=None, reason="waiting-for-capacity", seconds=5),)
    text = text_of(top.Frame(summary=SUMMARY, waits=waits, since="x", more_waiting=True))
    assert "(more than 1000 waiting per reason: only those were read)" in text


def test_needs_the_api_url_and_a_positive_interval(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="set VNB_API_URL"):
        top.cmd_top(argparse.Namespace(api_url=None, function_key=None, token=None, once=True, json=False, waits=5))
    with pytest.raises(SystemExit):
        cli_main(["top", "--interval", "0", "--api-url", "http://127.0.0.1:9"])
    assert "must be more than 0 seconds" in capsys.readouterr().err


def test_an_unreachable_api_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["top", "--once", "--api-url", "http://127.0.0.1:9"])  # port 9 (discard): nothing listens
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach http://127.0.0.1:9")
    assert len(err.strip().splitlines()) == 1


def test_an_app_without_the_summary_route_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """A host answers an unknown route with a bare 404 (no problem document): an older app."""

    class NoRoute(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), NoRoute) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code = cli_main(["top", "--once", "--api-url", url])
        server.shutdown()
    err = capsys.readouterr().err
    assert code == 3
    assert f"error: {url} serves no GET /api/summary: deploy a version of the app that has it" in err


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
"""Terminal control sequences (colours, cursor moves) between the characters a user reads."""


class CountingApi(BaseHTTPRequestHandler):
    """A loopback API whose n-th summary says ``running`` = n (and lists nothing waiting)."""

    summaries = 0

    def do_GET(self) -> None:
        if self.path.startswith("/api/summary"):
            type(self).summaries += 1
            team = {**SUMMARY["teams"][0], "running": type(self).summaries}
            body = json.dumps({**SUMMARY, "teams": [team]}).encode()
        else:
            body = json.dumps({"items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_the_live_view_refreshes_until_ctrl_c() -> None:
    """On a terminal (a pty) each refresh redraws the frame with new figures; Ctrl-C ends it, 0."""
    with ThreadingHTTPServer(("127.0.0.1", 0), CountingApi) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        main_fd, child_fd = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "top", "--interval", "0.2", "--api-url", url],
            stdout=child_fd,
            stderr=subprocess.PIPE,
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "160", "TERM": "xterm"},
        )
        os.close(child_fd)
        seen = ""
        try:
            while "running 3" not in seen:
                ready, _, _ = select.select([main_fd], [], [], 30)
                assert ready, f"no third frame: {seen[-2000:]!r}"
                seen = ANSI.sub("", seen + os.read(main_fd, 65536).decode(errors="replace"))
            proc.send_signal(signal.SIGINT)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(main_fd)
            server.shutdown()
    assert "running 1" in seen
    assert "running 2" in seen
    assert "(every 0.2 s, Ctrl-C to quit)" in seen
