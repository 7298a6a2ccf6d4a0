"""Fixtures shared by every test folder: settings built the way the app builds them."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shared.config.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def wait_for[T](probe: Callable[[], T | None], *, what: str = "condition", timeout: float = 30.0) -> T:
    """Poll until ``probe`` returns something truthy and return it; fail naming ``what``.

    Tests wait for behaviour this way instead of asserting durations.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def metric_points(reader: Any) -> dict[str, list[Any]]:
    """One collection of an OpenTelemetry ``InMemoryMetricReader`` (as one export would see it):
    metric name → its data points."""
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


BASE_ENV: dict[str, str] = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "VNB_REQUESTS_QUEUE": "vnb-requests",
    "VNB_EVENTS_QUEUE": "vnb-events",
    "VNB_FOLLOWUP_QUEUE": "vnb-followup",
    "VNB_RECONCILE_SCHEDULE": "*/5 * * * * *",
    "VNB_SCHEDULES_TIMER": "0 * * * * *",
    "VNB_CLUSTER_MODE": "kubeconfig",
    "VNB_KUBECONFIG": "/nonexistent/kubeconfig",
    "VNB_ALLOWED_REGISTRIES": "mcr.microsoft.com,docker.io",
}


def make_env(**overrides: str) -> dict[str, str]:
    env = dict(BASE_ENV)
    env.update(overrides)
    return env


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def build(**overrides: str) -> Settings:
        return Settings.from_env(make_env(**overrides))

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def sample_requests() -> dict[str, Any]:
    return json.loads((REPO / "samples" / "requests.json").read_text())


def sample_settings() -> dict[str, str]:
    """The non-empty ``Values`` of local.settings.sample.json (what a fresh user starts with)."""
    values = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    return {k: v for k, v in values.items() if v != ""}


def function_app_module() -> ModuleType:
    """``function_app``, imported in this process with the sample settings where unset.

    Importing the app validates its settings (shared.flows.runtime.check_settings, as the worker does when
    it indexes), so the import needs valid ones; the environment is put back afterwards.
    """
    if "function_app" not in sys.modules:
        saved = dict(os.environ)
        os.environ.update({k: v for k, v in sample_settings().items() if k not in os.environ})
        try:
            import function_app  # noqa: F401
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return sys.modules["function_app"]


def get_functions_again(app: Any) -> list[Any]:
    """``app.get_functions()`` of the SDK's FunctionApp, callable more than once per process.

    For tests that inspect the app's declared bindings (not to invoke functions: invocations
    go through the local host and the real worker runtime). azure-functions remembers earlier
    get_functions() calls in ``app.functions_bindings`` and a second call raises "does not have
    a unique function name"; index with a fresh check and put the attribute back.
    """
    remembered = app.functions_bindings
    app.functions_bindings = None
    try:
        return list(app.get_functions())
    finally:
        app.functions_bindings = remembered


def job_name_for(key: str, **overrides: str) -> str:
    """The Job name the app gives ``key`` with the test settings (namespace ``vnode-batch``)."""
    from shared.job.render import job_name

    return job_name(key, settings=Settings.from_env(make_env(**overrides)))
