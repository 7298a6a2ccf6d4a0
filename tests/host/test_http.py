"""HTTP triggers on the local host: routes, methods, function keys (docs/local-host.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import requests

from devtools.host import LocalHost
from devtools.host.http import authorized, compile_route
from tests.host.conftest import FUNCTION_KEY, MASTER_KEY


@pytest.fixture
def host(make_host: Callable[..., LocalHost]) -> Iterator[LocalHost]:
    with make_host() as started:
        yield started


def test_route_parameters_query_body_and_response_reach_through_the_runtime(host: LocalHost) -> None:
    r = requests.post(f"{host.http_url}/api/hello/ada?x=1&empty=", data=b"payload",
                   headers={"x-functions-key": FUNCTION_KEY, "user-agent": "probe"})
    assert r.status_code == 201
    assert r.headers["x-sample"] == "yes"
    assert r.headers["content-type"].startswith("application/json")
    # Empty query values are not passed on (GrpcMessageConversionExtensions.ToRpcHttp).
    assert r.json() == {"name": "ada", "method": "POST", "query": {"x": "1"}, "body": "payload", "agent": "probe"}


@pytest.mark.parametrize(("kind", "content_type"), [("png", "image/png"), ("css", "text/css; charset=utf-8")])
def test_a_bytes_body_and_its_content_type_and_headers_pass_through(host: LocalHost, kind: str, content_type: str) -> None:
    # The status page's assets depend on it: the worker sends the body as bytes and the
    # Content-Type it made from mimetype/charset (azure.functions HttpResponseConverter) as a header.
    r = requests.get(f"{host.http_url}/api/bytes/{kind}", timeout=30)
    assert r.status_code == 200
    assert r.content == b"\x89PNG\r\n\x1a\n\x00\xff\xfe"
    assert r.headers["content-type"] == content_type
    assert (r.headers["cache-control"], r.headers["etag"]) == ("no-cache", '"v1"')
    assert r.headers["content-length"] == str(len(r.content))


def test_a_repeated_query_parameter_arrives_joined_with_commas(host: LocalHost) -> None:
    r = requests.get(f"{host.http_url}/api/hello/ada?tag=a&tag=b&one=1", headers={"x-functions-key": FUNCTION_KEY})
    assert r.json()["query"] == {"tag": "a,b", "one": "1"}


def test_the_code_query_parameter_is_a_key_too(host: LocalHost) -> None:
    r = requests.get(f"{host.http_url}/api/hello/bob", params={"code": FUNCTION_KEY})
    assert r.status_code == 200
    assert r.json()["name"] == "bob"


@pytest.mark.parametrize("headers", [{}, {"x-functions-key": "wrong"}])
def test_a_missing_or_wrong_key_is_401(host: LocalHost, headers: dict[str, str]) -> None:
    assert requests.get(f"{host.http_url}/api/hello/eve", headers=headers).status_code == 401


def test_anonymous_needs_no_key_and_admin_needs_the_master_key(host: LocalHost) -> None:
    assert requests.get(f"{host.http_url}/api/open").text == "open"
    assert requests.get(f"{host.http_url}/api/admin-only", headers={"x-functions-key": FUNCTION_KEY}).status_code == 401
    r = requests.get(f"{host.http_url}/api/admin-only", headers={"x-functions-key": MASTER_KEY})
    assert (r.status_code, r.text) == (200, "admin")
    # The master key also satisfies authLevel function (AuthUtility.PrincipalHasAuthLevelClaim).
    assert requests.get(f"{host.http_url}/api/hello/x", headers={"x-functions-key": MASTER_KEY}).status_code == 200


def test_unknown_routes_and_other_methods_are_404(host: LocalHost) -> None:
    key = {"x-functions-key": FUNCTION_KEY}
    assert requests.get(f"{host.http_url}/api/nope", headers=key).status_code == 404
    assert requests.delete(f"{host.http_url}/api/hello/ada", headers=key).status_code == 404
    assert requests.get(f"{host.http_url}/hello/ada", headers=key).status_code == 404  # no /api prefix


def test_a_failing_function_is_a_500_without_the_traceback(host: LocalHost) -> None:
    r = requests.get(f"{host.http_url}/api/hello/ada", params={"fail": "1"}, headers={"x-functions-key": FUNCTION_KEY})
    assert r.status_code == 500
    assert "secret detail" not in r.text


def test_route_templates() -> None:
    assert compile_route("items/{id:int}").match("items/12")
    assert not compile_route("items/{id:int}").match("items/x")
    assert compile_route("files/{*path}").match("files/a/b/c").group("path") == "a/b/c"  # type: ignore[union-attr]
    assert compile_route("requests/{id?}").match("requests")
    assert compile_route("requests/{id?}").match("requests/r1")


def test_key_rules() -> None:
    keys = {"default": "k1"}
    assert authorized("anonymous", None, keys, "m")
    assert not authorized("function", None, keys, "m")
    assert authorized("function", "k1", keys, "m")
    assert authorized("function", "m", keys, "m")
    assert not authorized("admin", "k1", keys, "m")
    assert authorized("admin", "m", keys, "m")
    json.dumps(keys)  # keys are plain strings: configurable from tests and the CLI
