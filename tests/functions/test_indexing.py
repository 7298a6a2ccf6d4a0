"""The app as the Functions host indexes it: every function, binding and annotation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import typing
from typing import Any

import azure.functions as func
import pytest

from tests.conftest import REPO, function_app_module, get_functions_again, sample_settings


@pytest.fixture(scope="module")
def functions() -> dict[str, Any]:
    return {f.get_function_name(): f for f in get_functions_again(function_app_module().app)}


def bindings(fn: Any) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in json.loads(fn.get_function_json())["bindings"]}


def test_dispatch_bindings(functions: dict[str, Any]) -> None:
    b = bindings(functions["dispatch"])
    assert b["msg"] == {
        "direction": "IN",
        "type": "queueTrigger",
        "name": "msg",
        "queueName": "%VNB_REQUESTS_QUEUE%",
        "connection": "AzureWebJobsStorage",
    }
    assert b["events"]["type"] == "queue"
    assert b["events"]["direction"] == "OUT"
    assert b["events"]["queueName"] == "%VNB_EVENTS_QUEUE%"
    assert b["events"]["connection"] == "AzureWebJobsStorage"


def test_deadletter_reads_the_poison_queue(functions: dict[str, Any]) -> None:
    b = bindings(functions["deadletter"])
    assert b["msg"]["type"] == "queueTrigger"
    assert b["msg"]["queueName"] == "%VNB_REQUESTS_QUEUE%-poison"
    assert b["events"]["queueName"] == "%VNB_EVENTS_QUEUE%"


def test_reconcile_followup_reads_the_followup_queue_and_writes_no_binding(functions: dict[str, Any]) -> None:
    # Its events go out with the queue client before each Job is marked (as on the timer), and
    # its next message needs a visibility delay, which an output binding cannot give.
    b = bindings(functions["reconcile_followup"])
    assert b == {
        "msg": {
            "direction": "IN",
            "type": "queueTrigger",
            "name": "msg",
            "queueName": "%VNB_FOLLOWUP_QUEUE%",
            "connection": "AzureWebJobsStorage",
        }
    }


def test_outputs_are_declared_as_func_out(functions: dict[str, Any]) -> None:
    # A plain `str` annotation indexes fine but fails in the real worker.
    for name, fn in functions.items():
        hints = typing.get_type_hints(fn.get_user_function())
        for binding in bindings(fn).values():
            if binding["direction"] == "OUT" and binding["name"] != "$return":  # HTTP: the return value
                hint = hints[binding["name"]]
                assert typing.get_origin(hint) is func.Out, f"{name}.{binding['name']} must be func.Out[...]"


def test_deadletter_output_is_a_typing_list_of_str(functions: dict[str, Any]) -> None:
    # A list output's elements are queued verbatim (a `str` holding a JSON object would be
    # re-indented by the host), and the production worker refuses the built-in `list[str]`
    # inside func.Out: it must be typing.List[str].
    hint = typing.get_type_hints(functions["deadletter"].get_user_function())["events"]
    (inner,) = typing.get_args(hint)
    assert inner == typing.List[str]  # noqa: UP006
    assert not isinstance(inner, types.GenericAlias)


def test_every_function_has_a_unique_name_and_known_trigger(functions: dict[str, Any]) -> None:
    triggers = {
        name: next(b["type"] for b in bindings(fn).values() if b["direction"] == "IN") for name, fn in functions.items()
    }
    assert triggers["dispatch"] == "queueTrigger"
    assert triggers["deadletter"] == "queueTrigger"
    assert triggers["reconcile_followup"] == "queueTrigger"
    assert set(triggers.values()) <= {"queueTrigger", "timerTrigger", "httpTrigger"}


@pytest.mark.parametrize(
    ("name", "method", "route"),
    [
        ("submit_request", "POST", "requests"),
        ("list_requests", "GET", "requests"),
        ("get_request", "GET", "requests/{id}"),
        ("cancel_request", "DELETE", "requests/{id}"),
        ("get_summary", "GET", "summary"),
        ("status_page", "GET", "status"),
    ],
)
def test_api_routes_need_a_function_key(functions: dict[str, Any], name: str, method: str, route: str) -> None:
    b = bindings(functions[name])
    assert b["req"] == {
        "direction": "IN",
        "type": "httpTrigger",
        "name": "req",
        "methods": [method],
        "authLevel": "FUNCTION",
        "route": route,
    }
    assert b["$return"] == {"direction": "OUT", "type": "http", "name": "$return"}


def test_the_status_pages_assets_are_anonymous_and_read_only(functions: dict[str, Any]) -> None:
    # Public code without data: a module script cannot send the key (functions/status.py).
    b = bindings(functions["status_asset"])
    assert (b["req"]["authLevel"], b["req"]["methods"], b["req"]["route"]) == ("ANONYMOUS", ["GET"], "status/assets/{name}")


def test_importing_the_app_does_not_load_management_sdks() -> None:
    # Cold start: the queue-trigger path must not pay for azure.mgmt.* (~0.5 s, 60+ MB).
    code = "import sys, function_app; print(sorted(m for m in sys.modules if m.startswith('azure.mgmt')))"
    env = {**os.environ, **sample_settings()}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
