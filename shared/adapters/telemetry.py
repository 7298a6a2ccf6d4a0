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
    from collections.abc import Sequence

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("vnode_batch.telemetry")

SERVICE_NAME = "vnode-batch"
EXPORT_INTERVAL_MS = 60_000
"""How often metrics are exported (the SDK's default, OTEL_METRIC_EXPORT_INTERVAL, too)."""

EXEMPLAR_FILTER = "OTEL_METRICS_EXEMPLAR_FILTER"
DISABLED_INSTRUMENTATIONS = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"

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

            # The distro builds its own MeterProvider, which reads the exemplar filter from the
            # standard variable (opentelemetry-sdk ``MeterProvider.__init__``:
            # OTEL_METRICS_EXEMPLAR_FILTER, default trace_based). Off unless an operator sets it:
            # the Azure Monitor exporter sends no exemplars (azure-monitor-opentelemetry-exporter
            # ``export/metrics/_exporter.py`` converts data points only), so sampling them only
            # costs each request CPU (docs/performance.md, "Telemetry overhead").
            os.environ.setdefault(EXEMPLAR_FILTER, "always_off")
            # The distro also turns on Azure SDK tracing and the requests/urllib3 instrumentations
            # (azure-monitor-opentelemetry ``_configure.py``): 5 more spans per dispatch, +15 % CPU
            # per request against +2.6 % without them (docs/performance.md, "Telemetry overhead").
            # The app's own spans already time the Kubernetes create and the report; an operator
            # who wants Application Insights' dependency records sets the variable (the distro
            # reads it: ``_utils/configurations.py``), e.g. to an empty value.
            os.environ.setdefault(DISABLED_INSTRUMENTATIONS, "azure_sdk,requests,urllib3,urllib")

            options: dict[str, object] = {"resource": _resource()}
            if "Authorization=AAD" in env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""):
                from azure.identity import ManagedIdentityCredential

                client_id = env.get("AZURE_CLIENT_ID")
                options["credential"] = ManagedIdentityCredential(client_id=client_id) if client_id else None
            configure_azure_monitor(**{k: v for k, v in options.items() if v is not None})
        signals.enable(metrics.get_meter_provider(), trace.get_tracer_provider())
        return
    from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader

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
    meter_provider, tracer_provider = providers(
        [PeriodicExportingMetricReader(metric_exporter, export_interval_millis=EXPORT_INTERVAL_MS)], span_exporter
    )
    metrics.set_meter_provider(meter_provider)
    trace.set_tracer_provider(tracer_provider)
    signals.enable(meter_provider, tracer_provider)


def providers(
    metric_readers: Sequence[MetricReader], span_exporter: SpanExporter
) -> tuple[MeterProvider, TracerProvider]:
    """The SDK's providers as ``console``/``otlp`` run them (bench/telemetry_overhead.py measures
    these very ones): the service's resource, one ``BatchSpanProcessor`` (spans are exported on
    its own thread, never in the request's), and no exemplars. An exemplar is a sampled
    measurement with the current span's ids (opentelemetry.io/docs/specs/otel/metrics/sdk/#exemplar);
    with the SDK's default filter (trace_based) every counter and histogram point recorded inside
    a span offers one to a reservoir, the largest share of a metric point's CPU on the dispatch
    path, while a request's trace is already found by its key and trace id (log records, ledger,
    status page). OTEL_METRICS_EXEMPLAR_FILTER, when set, still wins."""
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = _resource()
    exemplars = None if os.environ.get(EXEMPLAR_FILTER) else AlwaysOffExemplarFilter()
    meter_provider = MeterProvider(resource=resource, metric_readers=metric_readers, exemplar_filter=exemplars)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    return meter_provider, tracer_provider


def _resource() -> Resource:
    from opentelemetry.sdk.resources import Resource

    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES still win (Resource.create merges them over these).
    return Resource.create({"service.name": SERVICE_NAME})
