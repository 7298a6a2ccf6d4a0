"""The requests API through the local host: HTTP on loopback, function keys as the Functions host
checks them, the app's HTTP functions run by the real worker runtime (host-shaped ``RpcHttp``).

What a caller sees: 401 without a key, RFC 9457 problem details for every bad input (never a
500, never a traceback), responses that match docs/openapi.yaml, and a schemathesis run of the
whole document against the running host.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.host import LocalHost
from shared.intake.request import MAX_BODY_BYTES
from shared.ledger.api import ApiResponse
from tests.conftest import REPO, wait_for
from tests.integration.conftest import Queues
from tests.integration.test_api import conforms

pytestmark = pytest.mark.integration

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"


@pytest.fixture
def host(make_runner: Callable[..., LocalHost]) -> Iterator[LocalHost]:
    with make_runner(VNB_KEEP_FINISHED_SECONDS="0") as started:
        yield started


def call(host: LocalHost, method: str, path: str, *, key: bool = True, **kwargs: Any) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}))
    if key:
        headers["x-functions-key"] = host.function_keys["default"]
    return requests.request(method, f"{host.http_url}{path}", headers=headers, timeout=30, **kwargs)


def documented(r: requests.Response, path: str, method: str) -> dict[str, Any]:
    """The HTTP response is one docs/openapi.yaml allows for this operation; its body."""
    content_type = r.headers["content-type"].split(";")[0].strip()
    return conforms(ApiResponse(r.status_code, r.json(), dict(r.headers), content_type), path, method)


def problem(r: requests.Response, status: int) -> dict[str, Any]:
    """The response is problem details with ``status`` and no trace of Python internals."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["title"]
    assert "Traceback" not in r.text
    assert 'File "' not in r.text
    return body


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/requests"), ("GET", "/api/requests"), ("GET", "/api/requests/r1"), ("DELETE", "/api/requests/r1")],
)
def test_every_route_needs_a_function_key(host: LocalHost, method: str, path: str) -> None:
    assert call(host, method, path, key=False).status_code == 401
    assert call(host, method, path, key=False, headers={"x-functions-key": "not-the-key"}).status_code == 401
    # The `code` query parameter is a key too (AuthenticationLevelHandler).
    r = call(host, method, path, key=False, params={"code": host.function_keys["default"]}, json={"image": IMAGE})
    assert r.status_code != 401


def test_submit_status_list_and_cancel_over_http(queues: Queues, host: LocalHost) -> None:
    body = {"id": "http-1", "image": IMAGE, "command": ["sh", "-c", "sleep 30"], "labels": {"team": "billing"}}
    r = call(host, "POST", "/api/requests", json=body)
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == "/api/requests/http-1"
    documented(r, "/api/requests", "post")
    # The same id and content again: 202 for the same request, nothing new runs.
    again = call(host, "POST", "/api/requests", json=body)
    assert (again.status_code, again.json()["id"]) == (202, "http-1")
    # The same id with other content: 409.
    problem(call(host, "POST", "/api/requests", json={**body, "image": IMAGE + "x"}), 409)

    def running() -> bool:
        status = call(host, "GET", "/api/requests/http-1")
        documented(status, "/api/requests/{id}", "get")
        return bool(status.json()["state"] == "running")

    wait_for(running, what="the request to run")
    listing = call(host, "GET", "/api/requests", params={"label": "team=billing", "state": "running"})
    assert listing.status_code == 200
    documented(listing, "/api/requests", "get")
    assert [item["id"] for item in listing.json()["items"]] == ["http-1"]

    cancelled = call(host, "DELETE", "/api/requests/http-1")
    assert (cancelled.status_code, cancelled.json()["state"]) == (200, "cancelled")
    documented(cancelled, "/api/requests/{id}", "delete")
    # A repeated DELETE is safe (200 again) and sends no second event.
    assert call(host, "DELETE", "/api/requests/http-1").json()["state"] == "cancelled"
    host.run_until_idle()
    kinds = [json.loads(str(m.content))["type"] for m in queues.events.receive_messages(max_messages=32)]
    assert kinds == ["io.vnodebatch.job.cancelled"]


def test_cancelling_a_finished_request_is_409(queues: Queues, host: LocalHost) -> None:
    assert call(host, "POST", "/api/requests", json={"id": "done-1", "image": IMAGE}).status_code == 202
    wait_for(lambda: call(host, "GET", "/api/requests/done-1").json()["state"] == "succeeded", what="success")
    body = problem(call(host, "DELETE", "/api/requests/done-1"), 409)
    documented(call(host, "DELETE", "/api/requests/done-1"), "/api/requests/{id}", "delete")
    assert "succeeded" in body["detail"]


def test_repeated_label_parameters_all_apply(host: LocalHost) -> None:
    # The host joins a repeated parameter with commas (ToRpcHttp); the API reads k1=v1,k2=v2.
    for key, labels in (("both", {"team": "a", "tier": "b"}), ("one", {"team": "a"})):
        body = {"id": key, "image": IMAGE, "labels": labels}
        assert call(host, "POST", "/api/requests", json=body).status_code == 202
    r = call(host, "GET", "/api/requests?label=tier=b&label=team=a")  # the last alone would match both
    assert [item["id"] for item in documented(r, "/api/requests", "get")["items"]] == ["both"]


def test_an_invalid_request_is_a_400_with_the_field_errors_of_the_rejection_event(host: LocalHost) -> None:
    body = problem(
        call(host, "POST", "/api/requests", json={"id": "bad-1", "image": "quay.io/x/y:1", "cpu": "lots"}), 400
    )
    fields = {e["field"] for e in body["errors"]}
    assert {"image", "cpu"} <= fields
    problem(call(host, "GET", "/api/requests/bad-1"), 404)  # nothing was recorded or enqueued


@pytest.mark.parametrize(
    ("name", "data", "status", "field"),
    [
        ("malformed JSON", b'{"id": "x", "image": ', 400, None),
        ("not an object", b'["a"]', 400, None),
        ("not UTF-8", b'{"image": "\xff"}', 400, None),
        ("unknown field", json.dumps({"image": IMAGE, "colour": "blue"}).encode(), 400, "colour"),
        ("oversize body", b'{"image": "' + b"a" * (MAX_BODY_BYTES + 1) + b'"}', 413, None),
        ("empty body", b"", 400, None),
    ],
)
def test_bad_bodies_are_problem_details(
    host: LocalHost, name: str, data: bytes, status: int, field: str | None
) -> None:
    body = problem(call(host, "POST", "/api/requests", data=data, headers={"content-type": "application/json"}), status)
    if field is not None:
        assert field in json.dumps(body["errors"])


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/requests/no-such-request", 404),
        ("DELETE", "/api/requests/no-such-request", 404),
        ("GET", "/api/requests/" + "x" * 600, 400),
        ("GET", "/api/requests/has%20space", 400),
        ("GET", "/api/requests/%E2%98%83", 400),
        ("DELETE", "/api/requests/a%23b", 400),
    ],
)
def test_bad_or_unknown_ids_in_the_path(host: LocalHost, method: str, path: str, status: int) -> None:
    problem(call(host, method, path), status)


@pytest.mark.parametrize(
    "params",
    [
        {"state": "sleeping"},
        {"label": "no-equals-sign"},
        {"since": "yesterday"},
        {"pageToken": "not-a-token"},
        {"limit": "-1"},
        {"limit": "many"},
        {"colour": "blue"},
    ],
)
def test_bad_query_parameters_are_400(host: LocalHost, params: dict[str, str]) -> None:
    problem(call(host, "GET", "/api/requests", params=params), 400)


def test_schemathesis_finds_no_departure_from_the_openapi_document(host: LocalHost, tmp_path: Path) -> None:
    """schemathesis generates valid and invalid calls for every operation in docs/openapi.yaml
    and checks every response: no 5xx, documented status codes, content types and schemas.
    Bounded: a fixed seed and a few hundred examples in all."""
    report = tmp_path / "schemathesis.json"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            str(REPO / "docs" / "openapi.yaml"),
            "--url",
            host.http_url,
            "-H",
            f"x-functions-key: {host.function_keys['default']}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
            "negative_data_rejection",
            "--max-examples",
            "40",
            "--seed",
            "1",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--no-color",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(report),
        ],
        cwd=tmp_path,  # schemathesis keeps a cache directory in its working directory
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Generated bodies can be megabytes long: keep each line of the report short.
    shown = "\n".join(line[:300] for line in (proc.stdout + proc.stderr).splitlines())
    assert proc.returncode == 0, shown[-12000:]
    assert "generated" in proc.stdout, shown[-3000:]
