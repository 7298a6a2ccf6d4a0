"""Settings of the app's telemetry (issue 21): where metrics and traces go, and the link to a
request's trace."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from shared.config.fields import SettingsGroup, setting

TelemetryMode = Literal["off", "console", "otlp", "azuremonitor"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class TelemetrySettings(SettingsGroup):
    """VNB_TELEMETRY, VNB_TRACE_URL and VNB_AZURE_SDK_LOG_LEVEL."""

    telemetry: TelemetryMode | None = setting(
        "VNB_TELEMETRY",
        None,
        (
            "Where metrics and traces go: `off`, `console` (stdout), `otlp` (the OTLP/HTTP endpoint in the "
            "standard `OTEL_EXPORTER_OTLP_ENDPOINT`), `azuremonitor` (Application Insights, with "
            "`APPLICATIONINSIGHTS_CONNECTION_STRING`). Unset: `azuremonitor` when that connection string is "
            'set, else `off`. docs/operations.md "Telemetry".'
        ),
    )
    trace_url: str | None = setting(
        "VNB_TRACE_URL",
        None,
        (
            "A link to a request's trace, with `{traceId}` where its trace id goes (e.g. an Application "
            "Insights transaction search URL): GET /api/requests/{id} shows it as `traceUrl`."
        ),
    )

    azure_sdk_log_level: LogLevel = setting(
        "VNB_AZURE_SDK_LOG_LEVEL",
        "WARNING",
        (
            "Level of the Azure SDK's own loggers (`azure.*`). azure-core logs every HTTP request and "
            "response, headers included, at INFO, and the Python worker forwards every INFO record to the "
            "host (and Application Insights): two per storage call. The Functions runtime's own `azure.functions` "
            "INFO lines (indexing, one per invocation) are under it too. `INFO` shows them again, to debug "
            'SDK calls. docs/operations.md "Telemetry".'
        ),
    )

    @field_validator("azure_sdk_log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return str(value).strip().upper() if isinstance(value, str) else value

    @field_validator("trace_url")
    @classmethod
    def _trace_url(cls, value: Any) -> Any:
        if value is None:
            return value
        text = str(value).strip()
        if not text.startswith(("https://", "http://")) or "{traceId}" not in text:
            raise ValueError("must be an http(s) URL containing {traceId}, e.g. https://example.org/trace/{traceId}")
        return text

    def trace_link(self, trace_id: str | None) -> str | None:
        """VNB_TRACE_URL with ``trace_id`` filled in (None without either)."""
        if not trace_id or not self.trace_url:
            return None
        return self.trace_url.replace("{traceId}", trace_id)
