"""Exporters for the app's metrics and spans: the only module that imports the OpenTelemetry SDK,
its exporters or the Azure Monitor distro, and only when VNB_TELEMETRY is not ``off``.

Modes (``VNB_TELEMETRY``, default ``azuremonitor`` when ``APPLICATIONINSIGHTS_CONNECTION_STRING``
is set, else ``off``):

* ``azuremonitor``: Application Insights through the Azure Monitor OpenTelemetry distro
  (``azure.monitor.opentelemetry.configure_azure_monitor``, which reads the connection string
  from ``APPLICATIONINSIGHTS_CONNECTION_STRING``). "Use OpenTelemetry with Azure Functions"
  (learn.microsoft.com/azure/azure-functions/opentelemetry-howto, Python) has the app call
  ``configure_azure_monitor()`` itself, with host.json ``"telemetryMode": "OpenTelemetry"`` and
  the app setting ``PYTHON_ENABLE_OPENTELEMETRY=true``; the worker then attaches the host's trace
  context to each invocation (azure-functions-runtime ``otel.configure_opentelemetry``: it
  extracts ``traceparent``/``tracestate`` from the invocation's ``trace_context``) so the app's
  spans join the host's. When ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`` is true the worker
  calls ``configure_azure_monitor()`` itself at init (``otel.initialize_azure_monitor``), and the
  app only takes the global providers, so nothing is configured twice. Ingestion with Entra ID
  (local auth off, infra/): ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` names the identity, and
  the exporter gets a managed-identity credential for it ("Microsoft Entra authentication for
  Application Insights", learn.microsoft.com/azure/azure-monitor/app/azure-ad-authentication).
* ``console``: metrics and spans printed to stdout (the local host's log).
* ``otlp``: OTLP over HTTP/protobuf to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporters read the
  standard ``OTEL_EXPORTER_OTLP_*`` variables themselves), e.g. a local collector or Jaeger.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from shared.config.settings import Settings
from shared.telemetry import logs, signals

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

log = logging.getLogger("vnode_batch.telemetry")

SERVICE_NAME = "vnode-batch"
EXPORT_INTERVAL_MS = 60_000
"""How often metrics are exported (the SDK's default, OTEL_METRIC_EXPORT_INTERVAL, too)."""

_lock = threading.Lock()
_done = threading.Event()


def mode_of(settings: Settings, environ: Mapping[str, str]) -> str:
    """The effective VNB_TELEMETRY (its default depends on the connection string)."""
    if settings.telemetry is not None:
        return settings.telemetry
    return "azuremonitor" if environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING") else "off"


def configure(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """Set up the exporters once per process; the mode in force. A failure to set them up is
    logged and telemetry stays off: the app's work never depends on its telemetry."""
    env = os.environ if environ is None else environ
    mode = mode_of(settings, env)
    if _done.is_set():  # every invocation calls this: one global read once set up
        return mode
    with _lock:
        if _done.is_set():
            return mode
        _done.set()
        logs.install()
        if mode == "off":
            return mode
        try:
            _configure(mode, env)
        except Exception:
            log.exception("telemetry (VNB_TELEMETRY=%s) could not be set up; it stays off", mode)
            return "off"
    log.info("telemetry: %s", mode)
    return mode


def _configure(mode: str, env: Mapping[str, str]) -> None:
    from opentelemetry import metrics, trace

    if mode == "azuremonitor":
        if env.get("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "").lower() not in ("true", "1"):
            from azure.monitor.opentelemetry import configure_azure_monitor

            options: dict[str, object] = {"resource": _resource()}
            if "Authorization=AAD" in env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""):
                from azure.identity import ManagedIdentityCredential

                client_id = env.get("AZURE_CLIENT_ID")
                options["credential"] = ManagedIdentityCredential(client_id=client_id) if client_id else None
            configure_azure_monitor(**{k: v for k, v in options.items() if v is not None})
        signals.enable(metrics.get_meter_provider(), trace.get_tracer_provider())
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    metric_exporter: MetricExporter
    span_exporter: SpanExporter
    if mode == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        metric_exporter, span_exporter = ConsoleMetricExporter(), ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        metric_exporter, span_exporter = OTLPMetricExporter(), OTLPSpanExporter()
    resource = _resource()
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[PeriodicExportingMetricReader(metric_exporter, export_interval_millis=EXPORT_INTERVAL_MS)],
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    metrics.set_meter_provider(meter_provider)
    trace.set_tracer_provider(tracer_provider)
    signals.enable(meter_provider, tracer_provider)


def _resource() -> Resource:
    from opentelemetry.sdk.resources import Resource

    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES still win (Resource.create merges them over these).
    return Resource.create({"service.name": SERVICE_NAME})
