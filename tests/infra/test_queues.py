"""The queues infra/ creates are the queues the bindings resolve to with the deployed settings."""

from __future__ import annotations

import re
from typing import Any

import pytest

from functions import bindings
from tests.conftest import function_app_module, get_functions_again
from tests.infra.app_settings import HOST_SETTINGS, app_settings_env, main_template, resolved_app_settings
from tests.infra.bicep_model import Unresolved

_SETTING_REFERENCE = re.compile(r"%([^%]+)%")


def created_queues() -> list[str]:
    main = main_template()
    queues = main.resolve(main.modules["storage"]["config"]["params"]["queueNames"])
    assert all(isinstance(q, str) for q in queues), f"queue names must be known before deployment: {queues}"
    return list(queues)


def resolve_binding(expression: str) -> str:
    """What the host makes of a ``%Setting%`` expression with the deployed app settings."""
    settings = app_settings_env()

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in settings, f"binding expression {expression!r} uses {name}, which infra/ does not set"
        return settings[name]

    return _SETTING_REFERENCE.sub(lookup, expression)


def test_the_four_queues_exist_and_are_distinct() -> None:
    queues = created_queues()
    assert len(set(queues)) == len(queues) == 4


@pytest.mark.parametrize(
    "expression", [bindings.REQUESTS_QUEUE, bindings.POISON_QUEUE, bindings.EVENTS_QUEUE, bindings.FOLLOWUP_QUEUE]
)
def test_binding_constants_resolve_to_created_queues(expression: str) -> None:
    assert resolve_binding(expression) in created_queues()


def test_settings_queue_names_match_the_created_queues() -> None:
    resolved = resolved_app_settings()
    requests, events, followup = (resolved[f"VNB_{q}_QUEUE"] for q in ("REQUESTS", "EVENTS", "FOLLOWUP"))
    assert not isinstance(requests, Unresolved)
    assert not isinstance(events, Unresolved)
    assert not isinstance(followup, Unresolved)
    assert set(created_queues()) == {requests, f"{requests}-poison", events, followup}


@pytest.mark.parametrize("expression", [bindings.RECONCILE_SCHEDULE, bindings.SCHEDULES_TIMER])
def test_timer_schedules_are_set(expression: str) -> None:
    assert resolve_binding(expression).strip()


def _indexed_bindings() -> list[tuple[str, dict[str, Any]]]:
    app = function_app_module().app
    return [
        (function.get_function_name(), binding.get_dict_repr())
        for function in get_functions_again(app)
        for binding in function.get_bindings()
    ]


def test_every_indexed_binding_resolves_against_the_deployed_settings() -> None:
    """Index the real app: each queue binding names a created queue over the identity connection,
    each timer schedule names a deployed setting."""
    queues = set(created_queues())
    settings = app_settings_env()
    seen = 0
    for function, binding in _indexed_bindings():
        if binding["type"] in ("queue", "queueTrigger"):
            seen += 1
            assert resolve_binding(binding["queueName"]) in queues, f"{function}: {binding['queueName']}"
            connection = binding["connection"]
            assert f"{connection}__queueServiceUri" in settings, f"{function}: no identity connection {connection}"
            assert f"{connection}__credential" in HOST_SETTINGS
        elif binding["type"] == "timerTrigger":
            assert resolve_binding(binding["schedule"]).strip(), f"{function}: {binding['schedule']}"
    assert seen, "the app indexed no queue binding"
