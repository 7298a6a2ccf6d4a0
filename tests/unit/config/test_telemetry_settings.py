"""VNB_TELEMETRY and VNB_TRACE_URL: a bad value stops startup naming the setting."""

from __future__ import annotations

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
