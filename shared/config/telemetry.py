"""The telemetry settings (issue 21), the first per-capability base model of ``Settings``.

``shared.config.settings.Settings`` inherits this model (pydantic merges base fields and
validators), the way its module docstring says the settings split along capabilities.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

TelemetryMode = Literal["off", "console", "otlp", "azuremonitor"]


class TelemetrySettings(BaseModel):
    telemetry: TelemetryMode | None = Field(
        None,
        alias="VNB_TELEMETRY",
        description=(
            "Where metrics and traces go: `off`, `console` (stdout), `otlp` (the OTLP/HTTP endpoint in the "
            "standard `OTEL_EXPORTER_OTLP_ENDPOINT`), `azuremonitor` (Application Insights, with "
            "`APPLICATIONINSIGHTS_CONNECTION_STRING`). Unset: `azuremonitor` when that connection string is "
            'set, else `off`. docs/operations.md "Telemetry".'
        ),
    )
    trace_url: str | None = Field(
        None,
        alias="VNB_TRACE_URL",
        description=(
            "A link to a request's trace, with `{traceId}` where its trace id goes (e.g. an Application "
            "Insights transaction search URL): GET /api/requests/{id} shows it as `traceUrl`."
        ),
    )

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
