"""VNB_TELEMETRY, VNB_TRACE_URL and VNB_AZURE_SDK_LOG_LEVEL: a bad value stops startup naming the setting."""

from __future__ import annotations

import logging

import pytest

from shared.adapters.telemetry import mode_of
from shared.config.settings import Settings, SettingsError
from tests.conftest import make_env


def test_a_bad_telemetry_mode_is_named() -> None:
    with pytest.raises(SettingsError) as e:
        Settings.from_env(make_env(VNB_TELEMETRY="stdout"))
    assert "VNB_TELEMETRY" in {name for name, _ in e.value.problems}


@pytest.mark.parametrize("value", ["https://example.org/trace", "ftp://example.org/{traceId}", "{traceId}"])
def test_a_trace_url_without_its_placeholder_or_scheme_is_named(value: str) -> None:
    with pytest.raises(SettingsError) as e:
        Settings.from_env(make_env(VNB_TRACE_URL=value))
    assert "VNB_TRACE_URL" in {name for name, _ in e.value.problems}


def test_the_trace_link_fills_in_the_trace_id() -> None:
    settings = Settings.from_env(make_env(VNB_TRACE_URL="https://portal.example/search?q={traceId}"))
    assert settings.trace_link("abc") == "https://portal.example/search?q=abc"
    assert settings.trace_link(None) is None
    assert Settings.from_env(make_env()).trace_link("abc") is None


def test_the_default_mode_follows_the_application_insights_connection_string() -> None:
    settings = Settings.from_env(make_env())
    assert mode_of(settings, {}) == "off"
    assert mode_of(settings, {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}) == "azuremonitor"
    explicit = Settings.from_env(make_env(VNB_TELEMETRY="console"))
    assert mode_of(explicit, {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}) == "console"


@pytest.mark.parametrize(("value", "level"), [(None, logging.WARNING), ("info", logging.INFO)])
def test_the_azure_sdk_logs_every_request_only_when_asked(value: str | None, level: int) -> None:
    # azure-core logs each request and response with its headers at INFO, and the Python worker
    # forwards every INFO record to the host: by default the app keeps the SDK's loggers at WARNING.
    from shared.flows.runtime import check_settings

    sdk = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    saved = logging.getLogger("azure").level
    try:
        env = make_env(AzureWebJobsStorage="UseDevelopmentStorage=true")
        if value is not None:
            env["VNB_AZURE_SDK_LOG_LEVEL"] = value
        check_settings(env)
        assert logging.getLogger("azure").level == level
        assert sdk.isEnabledFor(logging.INFO) is (level == logging.INFO)
    finally:
        logging.getLogger("azure").setLevel(saved)


def test_a_bad_sdk_log_level_is_named() -> None:
    with pytest.raises(SettingsError) as e:
        Settings.from_env(make_env(VNB_AZURE_SDK_LOG_LEVEL="chatty"))
    assert "VNB_AZURE_SDK_LOG_LEVEL" in {name for name, _ in e.value.problems}
