"""HTTP API edges found by the review of issue 19: the documented key location, what a 503 tells
a caller, and what the local host does with a body it should never read."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.host import LocalHost
from shared.adapters.kube import Cluster, from_kubeconfig_file
from shared.ledger.api import RequestsApi
from shared.ledger.store import Ledger
from tests.integration.conftest import Queues
from tests.integration.test_api import IMAGE, NS, Gate, api, cluster, conforms, ledger, run_dispatch, settings
from tests.integration.test_api_http import call, documented

pytestmark = pytest.mark.integration
__all__ = ["api", "cluster", "ledger", "settings"]  # fixtures used here


@pytest.fixture
def host(make_runner: Callable[..., LocalHost]) -> Iterator[LocalHost]:
    with make_runner(VNB_KEEP_FINISHED_SECONDS="0") as started:
        yield started


def test_the_key_in_the_code_parameter_works_on_every_route(host: LocalHost) -> None:
    code = {"code": host.function_keys["default"]}
    r = call(host, "POST", "/api/requests", key=False, params=code, json={"id": "k-1", "image": IMAGE})
    assert r.status_code == 202, r.text
    r = call(host, "GET", "/api/requests", key=False, params=code)
    assert [item["id"] for item in documented(r, "/api/requests", "get")["items"]] == ["k-1"]
    r = call(host, "GET", "/api/requests/k-1", key=False, params=code)
    assert r.status_code == 200, r.text


def _raw(host: LocalHost, head: str) -> bytes:
    """Send request headers (no body) on a fresh connection; the reply up to the connection's end."""
    port = int(host.http_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode("latin-1"))
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(("with_key", "status"), [(False, b"401"), (True, b"413")])
def test_a_huge_content_length_is_answered_without_reading_the_body(
    host: LocalHost, with_key: bool, status: bytes
) -> None:
    key = f"x-functions-key: {host.function_keys['default']}\r\n" if with_key else ""
    reply = _raw(host, f"POST /api/requests HTTP/1.1\r\nHost: x\r\n{key}Content-Length: 8000000000\r\n\r\n")
    assert reply.split(b"\r\n", 1)[0].split(b" ")[1] == status  # answered and closed, not waiting for 8 GB


def test_a_content_length_that_is_not_a_number_is_400(host: LocalHost, capfd: pytest.CaptureFixture[str]) -> None:
    key = host.function_keys["default"]
    reply = _raw(
        host, f"POST /api/requests HTTP/1.1\r\nHost: x\r\nx-functions-key: {key}\r\nContent-Length: abc\r\n\r\n"
    )
    assert reply.split(b"\r\n", 1)[0].split(b" ")[1] == b"400"
    assert "Traceback" not in capfd.readouterr().err


def test_a_503_says_what_to_do_and_nothing_about_the_platform(
    api: RequestsApi, queues: Queues, settings: object, ledger: Ledger, cluster: Cluster, tmp_path: Path
) -> None:
    api.submit(json.dumps({"id": "gone-1", "image": IMAGE, "command": ["sh", "-c", "sleep 30"]}).encode())
    assert run_dispatch(queues, api.settings, ledger, Gate(cluster))  # a Job exists
    # The cluster stops answering: a kubeconfig that points at a closed loopback port.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    config = json.loads(Path(api.settings.kubeconfig or "").read_text())  # the stand-in writes JSON
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{closed}"
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(json.dumps(config))
    unreachable = Cluster(from_kubeconfig_file(str(dead), context=None, timeout=2), NS)
    broken = RequestsApi(
        settings=api.settings,
        ledger=ledger,
        enqueue=api.enqueue,
        send_event=api.send_event,
        cluster=lambda: unreachable,
    )
    response = broken.handle(lambda: broken.cancel("gone-1"))
    problem = conforms(response, "/api/requests/{id}", "delete")
    assert problem["status"] == 503
    assert response.headers["Retry-After"]
    told = json.dumps({k: v for k, v in problem.items() if k != "type"})  # type is our own URI
    for internal in ("127.0.0.1", str(closed), "Error", "https://", "Traceback"):
        assert internal not in told, told
