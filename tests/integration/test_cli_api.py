"""The CLI's API commands (status, ls, cancel, submit --wait) against the requests API served by
the local host: HTTP on loopback, the host's function-key check, the app's HTTP, dispatch and
reconcile functions run by the real worker runtime.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.host import LocalHost
from shared.cli import main as cli
from tests.conftest import wait_for
from tests.integration.conftest import Queues

pytestmark = pytest.mark.integration

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
KEY = "test-function-key"


@pytest.fixture
def host(queues: Queues, make_runner: Callable[..., LocalHost]) -> Iterator[LocalHost]:
    runner = make_runner(VNB_KEEP_FINISHED_SECONDS="0")
    runner.function_keys = {"default": KEY}
    with runner:
        yield runner


def run_cli(capsys: pytest.CaptureFixture[str], host: LocalHost, *argv: str, key: str = KEY) -> tuple[int, str, str]:
    code = cli.main([*argv[:1], "--api-url", host.http_url, "--function-key", key, *argv[1:]])
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_wait_follows_to_the_end_then_status_and_ls(
    host: LocalHost, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    request = tmp_path / "r.json"
    request.write_text(
        json.dumps({"id": "cli-1", "image": IMAGE, "command": ["sh", "-c", "echo hi"], "labels": {"team": "billing"}})
    )
    code, out, _ = run_cli(capsys, host, "submit", str(request), "--wait", "--timeout", "60")
    assert code == 0, out
    assert "accepted cli-1 → /api/requests/cli-1" in out
    progress = [line.split()[-1] for line in out.splitlines() if line.startswith("  +")]
    assert progress[0] == "received"
    assert progress[-1] == "succeeded"
    # Without the key the host answers 401 and the CLI says so.
    code, _, err = run_cli(capsys, host, "status", "cli-1", key="wrong")
    assert (code, "error 401" in err) == (2, True), err

    code, out, _ = run_cli(capsys, host, "status", "cli-1")
    assert code == 0
    assert out.startswith("cli-1: succeeded")
    assert "outcome: outcome=succeeded, reason=Completed" in out  # no exitCode: the virtual node loses it
    code, out, _ = run_cli(capsys, host, "status", "cli-1", "--json")
    assert json.loads(out)["state"] == "succeeded"

    code, out, _ = run_cli(capsys, host, "ls", "--state", "succeeded", "--label", "team=billing")
    assert code == 0
    assert out.split()[:2] == ["cli-1", "succeeded"]
    code, out, err = run_cli(capsys, host, "ls", "--label", "team=search")
    assert (code, out, err.strip()) == (0, "", "no requests match")


def test_cancel_and_its_errors(
    host: LocalHost, queues: Queues, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    request = tmp_path / "r.json"
    request.write_text(json.dumps({"id": "cli-long", "image": IMAGE, "command": ["sh", "-c", "sleep 30"]}))
    run_cli(capsys, host, "submit", str(request), "--wait", "--timeout", "0.1")

    def running() -> bool:
        code, out, _ = run_cli(capsys, host, "status", "cli-long", "--json")
        return code == 0 and json.loads(out)["state"] == "running"

    wait_for(running, what="the Job to run")
    code, out, _ = run_cli(capsys, host, "cancel", "cli-long")
    assert (code, out.strip()) == (0, "cli-long: cancelled (cancelled through the API while running)")
    host.run_until_idle()
    kinds = [json.loads(t)["type"] for t in [m.content for m in queues.events.receive_messages(max_messages=32)]]
    assert kinds == ["io.vnodebatch.job.cancelled"]

    code, _, err = run_cli(capsys, host, "status", "no-such")
    assert code == 3
    assert "error 404" in err
    code, _, err = run_cli(capsys, host, "ls", "--state", "sleeping")
    assert code == 2
    assert "state: one of" in err
