"""LocalHost: the host's side of Azure Functions, around the real Python worker runtime.

The app runs in a worker process on ``azure-functions-runtime`` (what Azure runs on Python
3.13) and is reached only through the runtime's ``handle_event`` contract
(:mod:`devtools.host.client`). This object does what the host does around it: reads the
function metadata the worker returns, resolves settings, listens to queues
(:mod:`devtools.host.queues`) and timers (:mod:`devtools.host.timers`), serves HTTP triggers
(:mod:`devtools.host.http`), writes output bindings from the invocation response
(:mod:`devtools.host.bindings`) and enforces ``functionTimeout`` by restarting the worker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from devtools.host import protos
from devtools.host.bindings import (
    FunctionSpec,
    HttpTrigger,
    QueueTrigger,
    TimerTrigger,
    failure_message,
    function_specs,
    queue_trigger_data,
    read_as_enumerable,
)
from devtools.host.client import HostError, WorkerClient, WorkerRestarted
from devtools.host.contract import FunctionStats, Invocation, Outcome
from devtools.host.queues import (
    DEFAULT_MESSAGE_LEASE_S,
    Lease,
    QueueListener,
    encode,
    poison_queue_name,
    renew_leases,
)
from devtools.host.settings import QueuesOptions, StorageConnection, function_timeout, load_host_json
from devtools.host.timers import ScheduleMonitor, TimerListener

log = logging.getLogger("devtools.host")

REPO = Path(__file__).resolve().parents[2]
InvocationCallback = Callable[[str, Outcome, float], None]


class LocalHost:
    """Run a Functions app directory (``function_app.py``) like ``func start``, against Azurite.

    ``settings`` are the app settings (``local.settings.json`` ``Values``): the worker process
    gets them as its environment. ``host_json`` is a path or a dict. ``clock`` (UTC) drives
    timer schedules (tests move it forward). ``on_invocation(function, outcome, seconds)`` is
    called after every invocation and for every poisoned message. ``state_dir`` keeps the
    timers' schedule status (default: a fresh temporary directory per host, i.e. no history).
    ``function_keys`` ({name: value}) and ``master_key`` guard ``authLevel`` function/admin
    HTTP functions; unset, a random function key and master key are generated
    (:attr:`function_keys`, :attr:`master_key`). ``http_port`` 0 picks a free loopback port.

    The worker is started and the app indexed at construction, so a bad app or setting fails
    here with :class:`HostError`. Not reproduced: scale-out, the blob-lease singleton across
    instances, retry policies, Application Insights.
    """

    def __init__(
        self,
        app_dir: Path | str = REPO,
        *,
        settings: Mapping[str, str],
        host_json: Path | Mapping[str, Any],
        clock: Callable[[], datetime] | None = None,
        on_invocation: InvocationCallback | None = None,
        max_workers: int | None = None,
        message_lease_seconds: int = DEFAULT_MESSAGE_LEASE_S,
        state_dir: Path | None = None,
        http_port: int = 0,
        function_keys: Mapping[str, str] | None = None,
        master_key: str | None = None,
    ) -> None:
        self.app_dir = Path(app_dir)
        self.settings: dict[str, str] = dict(settings)
        self.host_json = load_host_json(host_json)
        self.queues_options = QueuesOptions.from_host_json(self.host_json)
        self.function_timeout = function_timeout(self.host_json)
        self.on_invocation = on_invocation
        self._clock = clock
        self._tick = 0.02 if clock is not None else 0.25
        self._max_workers = max_workers or self.queues_options.batch_size
        if message_lease_seconds < 2:
            raise HostError("message_lease_seconds must be at least 2")
        self.lease_seconds = message_lease_seconds
        self.monitor = ScheduleMonitor(state_dir or Path(tempfile.mkdtemp(prefix="vnb-host-")))
        self.http_port = http_port
        self.function_keys = dict(function_keys) if function_keys else {"default": secrets.token_urlsafe(32)}
        self.master_key = master_key or secrets.token_urlsafe(32)
        self.stopping = threading.Event()
        self.started = False
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._stats: dict[str, FunctionStats] = {}
        self._leases: set[Lease] = set()
        self._local = threading.local()
        self._listeners: list[QueueListener] = []
        self._timers: dict[str, TimerListener] = {}
        self._threads: list[threading.Thread] = []
        self.http: Any = None
        self.worker = WorkerClient(self.app_dir, {**os.environ, **self.settings})
        self.worker.start()
        try:
            self.functions, self.skipped = function_specs(self.worker.functions, self.settings)
            self._stats = {f.name: FunctionStats() for f in self.functions}
            for spec in self.functions:
                if isinstance(spec.trigger, TimerTrigger):
                    self._timers[spec.name] = TimerListener(self, spec, self.monitor, self.now, self._tick)
        except BaseException:
            self.worker.stop()  # a bad setting: do not leave the worker process behind
            raise

    # -- public API ---------------------------------------------------------------------------

    def describe(self) -> list[str]:
        """The indexed functions, one ``func start``-style line per binding."""
        lines = [line for f in self.functions for line in f.describe()]
        return lines + [f"{name}: not run locally ({why})" for name, why in self.skipped.items()]

    @property
    def stats(self) -> dict[str, FunctionStats]:
        with self._lock:
            return dict(self._stats)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._active + sum(listener.in_flight for listener in self._listeners)

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the HTTP front end (after :meth:`start`)."""
        if self.http is None:
            raise HostError("no HTTP server: start() a host whose app has HTTP functions")
        return str(self.http.url)

    def now(self) -> datetime:
        now = self._clock() if self._clock is not None else datetime.now(UTC)
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    def start(self) -> LocalHost:
        """Create queues, start the queue listeners, timers and HTTP server; returns ``self``."""
        if self.started:
            raise RuntimeError("the host is already started")
        if self.worker.functions == {} and self.functions:
            self.worker.start()
        self.stopping.clear()
        self._create_queues()
        self.started = True
        for spec in self.functions:
            if isinstance(spec.trigger, QueueTrigger):
                listener = QueueListener(self, spec, self._max_workers)
                self._listeners.append(listener)
                listener.thread.start()
        for timer in self._timers.values():
            timer.thread = threading.Thread(target=timer.run, name=timer.thread.name, daemon=True)
            timer.thread.start()
        renewer = threading.Thread(target=renew_leases, args=(self, self._leases, self._idle), daemon=True)
        renewer.start()
        self._threads.append(renewer)
        if any(isinstance(f.trigger, HttpTrigger) for f in self.functions):
            from devtools.host.http import HttpFrontEnd

            self.http = HttpFrontEnd(self, self.http_port).start()
        log.info("Local host started: %d function(s); %s", len(self.functions), self.queues_options.describe())
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop: no new polls or timer runs, wait for in-flight work, stop the worker.

        Every wait is bounded by ``timeout`` (seconds) in all; what each step took is logged at
        DEBUG (``python -m devtools.host -v``)."""
        deadline = time.monotonic() + timeout
        steps: list[str] = []
        begun = mark = time.monotonic()

        def step(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            steps.append(f"{name} {now - mark:.3f}s")
            mark = now

        self.stopping.set()
        if self.http is not None:
            self.http.stop()
            self.http = None
        step("http")
        for listener in self._listeners:
            listener.wake.set()
        for listener in self._listeners:
            listener.thread.join(max(0.0, deadline - time.monotonic()))
        step("queue listeners")
        for timer in self._timers.values():
            if timer.thread.is_alive():
                timer.thread.join(max(0.0, deadline - time.monotonic()))
        step("timers")
        with self._idle:
            while self._busy_locked() and time.monotonic() < deadline:
                self._idle.wait(0.1)
        step("running invocations")
        for listener in self._listeners:
            listener.pool.shutdown(wait=False, cancel_futures=True)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        step("lease renewer")
        self._listeners.clear()
        self._threads.clear()
        self.worker.stop()
        step("worker process")
        self.worker.functions = {}
        self.started = False
        log.debug("Stopped in %.3fs: %s", time.monotonic() - begun, ", ".join(steps))

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def run_until_idle(self, *, settle_seconds: float = 0.5, timeout: float = 60.0) -> None:
        """Block until every trigger queue is empty and nothing runs, for ``settle_seconds``.

        "Empty" is the queue's approximate message count (leased and released-but-invisible
        messages included). Raises ``TimeoutError`` if that does not happen within ``timeout``.
        """
        if not self.started:
            raise RuntimeError("start() the host before run_until_idle()")
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while True:
            now = time.monotonic()
            if self._is_idle():
                idle_since = idle_since if idle_since is not None else now
                if now - idle_since >= settle_seconds:
                    return
            else:
                idle_since = None
            if now >= deadline:
                raise TimeoutError(f"not idle after {timeout:g}s: {self.in_flight} in flight")
            time.sleep(0.05)

    def fire_timer(self, function_name: str, *, past_due: bool = False) -> Outcome:
        """Run one invocation of a timer function now (the admin API's "run this function").

        Waits for a running invocation of the same timer (one at a time, as the listener).
        """
        timer = self._timers.get(function_name)
        if timer is None:
            raise HostError(f"'{function_name}' is not a timer function of this app (timer functions: "
                            f"{sorted(self._timers)})")
        if not timer.status:
            timer.start_status()
        ok = timer.invoke(self.now(), past_due=past_due, run_on_startup=True,
                          reason="This function was programmatically called via the host APIs.")
        return "succeeded" if ok else "failed"

    def deliver(self, function_name: str, body: str, *, message_id: str | None = None,
                dequeue_count: int = 1) -> Invocation:
        """Invoke a queue function with one message, host-shaped, without a queue in between.

        For tests that need an exact redelivery (same id, higher dequeue count); outputs are
        written as for a received message. Works whether or not the host is started.
        """
        spec = next((f for f in self.functions if f.name == function_name), None)
        if spec is None or not isinstance(spec.trigger, QueueTrigger):
            raise HostError(f"'{function_name}' is not a queue function of this app")
        now = self.now()
        input_data, metadata = queue_trigger_data(
            spec.trigger.param, body, message_id=message_id or str(uuid.uuid4()), dequeue_count=dequeue_count,
            inserted_on=now, expires_on=now, next_visible_on=now, pop_receipt="local")
        return self.call(spec, input_data, metadata, reason="Delivered by the test host API.")

    # -- invocation ---------------------------------------------------------------------------

    def invoke(self, spec: FunctionSpec, input_data: list[Any], trigger_metadata: dict[str, Any], *,
               reason: str) -> bool:
        """Invoke through the worker and write the queue outputs; True when it succeeded."""
        return self.call(spec, input_data, trigger_metadata, reason=reason).ok

    def call(self, spec: FunctionSpec, input_data: list[Any], trigger_metadata: dict[str, Any], *,
             reason: str) -> Invocation:
        """One invocation: ``InvocationRequest`` → worker → outputs written on success only.

        Output bindings are flushed after the function returned and before the trigger is
        completed (azure-webjobs-sdk ``FunctionExecutor.ExecuteWithWatchersAsync`` then
        ``ParameterHelper.ProcessOutputParameters``); a failed write fails the invocation.
        """
        invocation_id = str(uuid.uuid4())
        # The host's Activity of this invocation, as a W3C traceparent: azure-functions-host
        # WorkerFunctionInvoker sets ``Traceparent = Activity.Current?.Id`` (W3C ids, .NET's default
        # format) and ScriptInvocationContextExtensions.ToRpcInvocationRequest sends it as
        # ``TraceContext``. A queue or timer trigger starts a new trace (a Storage queue message
        # carries no trace context to the host); an HTTP caller's traceparent is not modelled.
        traceparent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
        request = protos.InvocationRequest(invocation_id=invocation_id, function_id=spec.function_id,
                                           input_data=input_data, trigger_metadata=trigger_metadata,
                                           trace_context=protos.RpcTraceContext(trace_parent=traceparent))
        with self._lock:
            self._active += 1
            s = self._stats[spec.name]
            self._stats[spec.name] = dataclasses.replace(s, invocations=s.invocations + 1)
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.perf_counter()
        response: Any = None
        try:
            response = self.worker.invoke(request, timeout=self.function_timeout)
            error = failure_message(response)
            if error is None:
                self._write_outputs(spec, response.output_data)
        except (HostError, WorkerRestarted) as exc:
            error = str(exc)
        except Exception as exc:  # storage failure writing an output
            error = f"{type(exc).__name__}: {exc}"
        duration = time.perf_counter() - started
        ok = error is None
        if ok:
            log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", spec.name, invocation_id,
                     duration * 1000)
        else:
            log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms): %s", spec.name, invocation_id,
                      duration * 1000, error)
        with self._lock:
            self._active -= 1
            s = self._stats[spec.name]
            self._stats[spec.name] = dataclasses.replace(s, successes=s.successes + ok, failures=s.failures + (not ok))
            self._idle.notify_all()
        self._report(spec.name, "succeeded" if ok else "failed", duration)
        return Invocation(spec.name, ok, error, response, traceparent)

    def _write_outputs(self, spec: FunctionSpec, output_data: Iterable[Any]) -> None:
        by_name = {o.param: o for o in spec.outputs}
        for binding in output_data or ():
            target = by_name.get(binding.name)
            if target is None:
                continue
            for item in read_as_enumerable(binding.data):
                self.send(target.connection, target.queue_name, encode(item, self.queues_options.message_encoding))

    def count(self, name: str, field: str) -> None:
        with self._lock:
            s = self._stats[name]
            self._stats[name] = dataclasses.replace(s, **{field: getattr(s, field) + 1})
        if field == "poisoned":
            self._report(name, "poisoned", 0.0)

    def _report(self, name: str, outcome: Outcome, duration: float) -> None:
        if self.on_invocation is None:
            return
        try:
            self.on_invocation(name, outcome, duration)
        except Exception:
            log.exception("on_invocation callback failed")

    # -- storage ------------------------------------------------------------------------------

    def client(self, connection: StorageConnection, queue_name: str) -> QueueClient:
        """A per-thread client (the SDK's HTTP session is not meant to be shared)."""
        cache: dict[tuple[StorageConnection, str], QueueClient] | None = getattr(self._local, "clients", None)
        if cache is None:
            cache = self._local.clients = {}
        key = (connection, queue_name)
        if key not in cache:
            cache[key] = connection.queue_client(queue_name)
        return cache[key]

    def send(self, connection: StorageConnection, queue_name: str, content: str) -> None:
        """Send one message; create the queue on 404 (``AddMessageAndCreateIfNotExistsAsync``)."""
        client = self.client(connection, queue_name)
        try:
            client.send_message(content)
        except ResourceNotFoundError:
            try:
                client.create_queue()
            except ResourceExistsError:
                pass
            client.send_message(content)
        # SharedQueueWatcher: a listener on a queue this host just wrote to polls now.
        for listener in self._listeners:
            if listener.trigger.queue_name == queue_name and listener.trigger.connection == connection:
                listener.wake.set()

    def _create_queues(self) -> None:
        # The host creates poison and output queues when it first writes to them and never
        # creates a trigger queue; creating them up front is a local convenience so a fresh
        # Azurite needs no set-up.
        wanted: set[tuple[StorageConnection, str]] = set()
        for spec in self.functions:
            if isinstance(spec.trigger, QueueTrigger):
                wanted.add((spec.trigger.connection, spec.trigger.queue_name))
                poison = poison_queue_name(spec.trigger.queue_name)
                if poison:
                    wanted.add((spec.trigger.connection, poison))
            wanted |= {(o.connection, o.queue_name) for o in spec.outputs}
        for connection, queue in sorted(wanted, key=lambda w: w[1]):
            try:
                self.client(connection, queue).create_queue()
            except ResourceExistsError:
                pass
            except Exception as exc:
                raise HostError(f"cannot reach the queue service to create '{queue}' "
                                f"(connection {connection.description}): {exc}") from exc

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._leases.add(lease)

    def release_hold(self, lease: Lease) -> None:
        with self._idle:
            self._leases.discard(lease)
            self._idle.notify_all()

    def notify_idle(self) -> None:
        with self._idle:
            self._idle.notify_all()

    def _busy_locked(self) -> bool:
        return self._active > 0 or any(listener.in_flight for listener in self._listeners)

    def _is_idle(self) -> bool:
        with self._lock:
            if self._busy_locked():
                return False
        for listener in list(self._listeners):
            try:
                props = self.client(listener.trigger.connection, listener.trigger.queue_name).get_queue_properties()
            except Exception:
                return False
            if props.approximate_message_count:
                return False
        return True


# The name the tests and tools used before the host drove the real worker runtime.
LocalRunner = LocalHost
