"""The CLI's API commands (status, ls, cancel, submit --wait) against the API service served on
loopback, with the app's dispatch and reconcile functions run by the local runner.

The HTTP server here only routes to ``RequestsApi`` (what functions/api.py does); the host's
own HTTP layer and key checks are tested once the local host serves HTTP triggers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from devtools.runner import LocalRunner
from shared import cli
from shared.adapters.kube import Cluster, from_kubeconfig_file
from shared.adapters.queues import Queues as AppQueues
from shared.adapters.tables import Tables
from shared.services.api import ApiResponse, RequestsApi
from shared.services.ledger import Ledger
from shared.settings import Settings
from tests.conftest import wait_for
from tests.integration.conftest import Queues

pytestmark = pytest.mark.integration

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
KEY = "test-function-key"


class ApiServer:
    """RequestsApi over HTTP on 127.0.0.1 (routing only), recording the keys it was sent."""

    def __init__(self, api: RequestsApi) -> None:
        self.api = api
        self.keys: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                outer.keys.append(self.headers.get("x-functions-key"))
                url = urlsplit(self.path)
                parts = url.path.split("/")
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if url.path == "/api/requests" and self.command == "POST":
                    r = api.submit(body, content_type=self.headers.get("content-type"))
                elif url.path == "/api/requests" and self.command == "GET":
                    r = api.list(dict(parse_qs(url.query).items()))
                elif len(parts) == 4 and parts[:3] == ["", "api", "requests"]:
                    key = unquote(parts[3])
                    r = api.status(key) if self.command == "GET" else api.cancel(key)
                else:
                    r = ApiResponse(404, {"type": "x", "title": "no route", "status": 404, "detail": ""})
                data = r.text().encode()
                self.send_response(r.status)
                self.send_header("Content-Type", r.content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in r.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server(app_env: dict[str, str], queues: Queues) -> Iterator[ApiServer]:
    settings = Settings.from_env({**app_env, "VNB_KEEP_FINISHED_SECONDS": "0"})
    app_queues = AppQueues(settings)
    cluster = Cluster(from_kubeconfig_file(settings.kubeconfig or "", context=None, timeout=5), "vnode-batch")
    api = RequestsApi(
        settings=settings,
        ledger=Ledger(Tables(settings)),
        enqueue=lambda text: app_queues.send(settings.requests_queue, text),
        send_event=app_queues.send_event,
        cluster=lambda: cluster,
    )
    s = ApiServer(api)
    yield s
    s.stop()


def run_cli(capsys: pytest.CaptureFixture[str], server: ApiServer, *argv: str) -> tuple[int, str, str]:
    code = cli.main([*argv[:1], "--api-url", server.url, "--function-key", KEY, *argv[1:]])
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_wait_follows_to_the_end_then_status_and_ls(
    make_runner: Callable[..., LocalRunner],
    server: ApiServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    request = tmp_path / "r.json"
    request.write_text(
        json.dumps({"id": "cli-1", "image": IMAGE, "command": ["sh", "-c", "echo hi"], "labels": {"team": "billing"}})
    )
    with make_runner(VNB_KEEP_FINISHED_SECONDS="0"):
        code, out, _ = run_cli(capsys, server, "submit", str(request), "--wait", "--timeout", "60")
    assert code == 0, out
    assert "accepted cli-1 → /api/requests/cli-1" in out
    progress = [line.split()[-1] for line in out.splitlines() if line.startswith("  +")]
    assert progress[0] == "received"
    assert progress[-1] == "succeeded"
    assert set(server.keys) == {KEY}

    code, out, _ = run_cli(capsys, server, "status", "cli-1")
    assert code == 0
    assert out.startswith("cli-1: succeeded")
    assert "outcome: outcome=succeeded, reason=Completed" in out  # no exitCode: the virtual node loses it
    code, out, _ = run_cli(capsys, server, "status", "cli-1", "--json")
    assert json.loads(out)["state"] == "succeeded"

    code, out, _ = run_cli(capsys, server, "ls", "--state", "succeeded", "--label", "team=billing")
    assert code == 0
    assert out.split()[:2] == ["cli-1", "succeeded"]
    code, out, err = run_cli(capsys, server, "ls", "--label", "team=search")
    assert (code, out, err.strip()) == (0, "", "no requests match")


def test_cancel_and_its_errors(
    make_runner: Callable[..., LocalRunner],
    server: ApiServer,
    queues: Queues,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    request = tmp_path / "r.json"
    request.write_text(json.dumps({"id": "cli-long", "image": IMAGE, "command": ["sh", "-c", "sleep 30"]}))
    with make_runner(VNB_KEEP_FINISHED_SECONDS="0") as runner:
        cli.main(["submit", str(request), "--wait", "--timeout", "0.1", "--api-url", server.url])
        wait_for(lambda: server.api.ledger.get("cli-long").state.value == "running", what="the Job to run")  # type: ignore[union-attr]
        capsys.readouterr()
        code, out, _ = run_cli(capsys, server, "cancel", "cli-long")
        assert (code, out.strip()) == (0, "cli-long: cancelled (cancelled through the API while running)")
        runner.run_until_idle()
    kinds = [json.loads(t)["type"] for t in [m.content for m in queues.events.receive_messages(max_messages=32)]]
    assert kinds == ["io.vnodebatch.job.cancelled"]

    code, _, err = run_cli(capsys, server, "status", "no-such")
    assert code == 3
    assert "error 404" in err
    code, _, err = run_cli(capsys, server, "ls", "--state", "sleeping")
    assert code == 2
    assert "state: one of" in err
