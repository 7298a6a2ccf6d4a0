"""The composition root: settings, queue clients and the cluster gate, built once per process.

Functions call ``runtime()`` on each invocation; everything in it is created on first use
and cached, so the hot path neither re-parses settings nor rebuilds clients.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.adapters import telemetry
from shared.adapters.queues import Queues, queues_for
from shared.base.handles import MessageHandle
from shared.cluster.gate import gate_for
from shared.cluster.readiness import ClusterGate
from shared.config.settings import STORAGE_CONNECTION, Settings, settings_from
from shared.ledger.store import Ledger, ledger_for
from shared.teams.files import check_teams

if TYPE_CHECKING:
    from shared.ledger.api import RequestsApi
    from shared.ledger.summary import Holdings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    queues: Queues
    gate: ClusterGate

    @property
    def ledger(self) -> Ledger:
        """The request ledger (its table client is created on first use)."""
        return ledger_for(self.settings)

    def api(self) -> RequestsApi:
        """The HTTP API's service over this process's ledger, queues and cluster gate."""
        from shared.cluster.gate import cluster_for
        from shared.ledger.api import RequestsApi

        settings = self.settings
        return RequestsApi(
            settings=settings,
            ledger=self.ledger,
            enqueue=lambda text: self.queues.send(settings.requests_queue, text),
            send_event=self.queues.send_event,
            cluster=lambda: cluster_for(settings),
            holdings=lambda: holdings_now(settings),
        )

    def requeue(self, text: str, delay: int) -> MessageHandle:
        """Put a request back on the requests queue, invisible for ``delay`` s; its handle (``shared.flows.wake``)."""
        return self.queues.send_for_handle(self.settings.requests_queue, text, visibility_timeout=delay)

    def wake(self, handle: MessageHandle) -> bool:
        """Make a waiting request's message visible now (``Queues.wake``)."""
        return self.queues.wake(self.settings.requests_queue, handle)

    def park(self, body: bytes, delay: int) -> None:
        """Send a poisoned body to the poison queue again (``shared.flows.deadletter``). The host
        handed it over as the UTF-8 of the message's text (a queue message is XML text, so it is
        valid UTF-8); ``replace`` only keeps a malformed body from raising here."""
        self.queues.send(self.settings.poison_queue, body.decode("utf-8", "replace"), visibility_timeout=delay)


def holdings_now(settings: Settings) -> Holdings | None:
    """What the app's pods hold now (GET /api/summary), or None when no cluster is ready."""
    from shared.capacity.holdings import holdings_of
    from shared.cluster.gate import cluster_for
    from shared.ledger.summary import Holdings

    cluster = cluster_for(settings)
    if cluster is None:
        return None
    total, by_team = holdings_of(cluster, now=datetime.now(UTC), windows=settings.capacity_window_seconds)
    return Holdings(total, by_team)


def check_settings(environ: Mapping[str, str] | None = None) -> Settings | None:
    """Validate the app settings; called once when the worker indexes the app (``function_app.py``).

    Only where the Functions host runs: the host cannot start without its storage connection
    (``AzureWebJobsStorage`` or the identity-based ``AzureWebJobsStorage__*`` settings, "App
    settings reference for Azure Functions"), so an environment with none of them is a tool
    importing the module (a linter, an import probe) and gets None instead of an error.

    Raises :class:`shared.config.settings.SettingsError` naming every bad setting. An exception while
    the app module is imported fails indexing as a whole: azure-functions-runtime
    ``handle_event.worker_init_request`` catches what ``load_function_metadata`` (→
    ``loader.index_function_app``: ``importlib.import_module``) raises and answers the host with a
    ``StatusResult.Failure`` whose message is ``"SettingsError: <message>"``
    (``utils/tracing.serialize_exception``), so the host loads no function, no trigger listens and
    queued requests stay on the queue untouched until the setting is fixed. The parsed settings are
    cached (``settings_from``), so invocations do not parse them again.

    Also sets the Azure SDK's loggers (``azure``) to VNB_AZURE_SDK_LOG_LEVEL: azure-core's
    ``HttpLoggingPolicy`` logs each request and response with its headers at INFO unless its
    logger is not enabled for it (``azure/core/pipeline/policies/_universal.py``
    ``HttpLoggingPolicy.on_request``: ``if not logger.isEnabledFor(log_level): return``), and the
    Python worker sets the root logger to INFO and forwards every record to the host as an
    ``RpcLog`` (azure-functions-python-worker ``workers/proxy_worker/dispatcher.py``:
    ``Dispatcher.dispatch_forever``, ``AsyncLoggingHandler.emit`` → ``on_logging``): the host's
    ``logging.logLevel`` filters only after the worker has formatted and sent them.
    """
    env = os.environ if environ is None else environ
    if not any(name == STORAGE_CONNECTION or name.startswith(f"{STORAGE_CONNECTION}__") for name in env):
        return None
    settings = settings_from(env)
    logging.getLogger("azure").setLevel(settings.azure_sdk_log_level)
    check_teams(settings)
    from shared.schedules.enqueue import check_schedules  # croniter: imported at indexing anyway

    check_schedules(settings)
    return settings


def runtime() -> Runtime:
    settings = settings_from(os.environ)
    telemetry.configure(settings)  # once per process; VNB_TELEMETRY=off imports nothing
    return Runtime(settings=settings, queues=queues_for(settings), gate=gate_for(settings))


def utcnow() -> datetime:
    return datetime.now(UTC)
