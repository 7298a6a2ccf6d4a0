"""Storage queue trigger: the host's QueueListener and QueueProcessor over a real queue service.

Sources (azure-sdk-for-net ``sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/``):

* ``QueueListener.ExecuteAsync``: receive ``batchSize`` messages with a 10-minute visibility
  (``QueueListener`` ``_visibilityTimeout`` default), fetch again once in-flight work is at or
  below ``newBatchThreshold``; an empty poll backs off from 100 ms doubling up to
  ``maxPollingInterval`` with ±20 % randomisation (azure-webjobs-sdk
  ``src/Microsoft.Azure.WebJobs.Host/Timers/RandomizedExponentialBackoffStrategy.cs``:
  ``GetNextDelay`` with ``_deltaBackoff`` = 20 %); a message found resets it; a write by this
  host to the queue wakes the listener (``SharedQueueWatcher.Notify`` / ``QueueListener.Notify``).
* ``QueueListener`` ``UpdatedQueueMessageVisibilityTimeout``/``ITaskSeriesCommand``: the lease
  is renewed at half its life while the function runs.
* ``QueueProcessor.BeginProcessingMessageAsync``: a message whose dequeue count is already
  past ``maxDequeueCount`` is moved to the poison queue without invoking.
* ``QueueProcessor.CompleteProcessingMessageAsync``: success → delete; failure at
  ``>= maxDequeueCount`` → ``CopyMessageToPoisonQueueAsync`` (``SendMessageAsync(body)``: a
  *new* message, new id/insertion time/dequeue count, default TTL) then delete; other failure
  → ``ReleaseMessageAsync`` with ``visibilityTimeout``.
* ``QueueListenerFactory.CreatePoisonQueueReference`` (…Storage.Queues/src/Listeners/): a queue
  whose name ends in ``-poison``, or whose ``<name>-poison`` would exceed 63 characters, has
  **no** poison queue; then ``CompleteProcessingMessageAsync`` neither releases a failed
  message (it comes back when its lease lapses) nor moves it, and past ``maxDequeueCount``
  the message is skipped without being deleted (it stays until its TTL).
* ``messageEncoding`` (Queues extension ≥ 5.0, ``QueuesOptions.MessageEncoding``): base64 or
  none, for the trigger, outputs and the poison copy alike.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueMessage

from devtools.host.bindings import FunctionSpec, QueueTrigger, queue_trigger_data
from devtools.host.contract import Host
from devtools.host.settings import MIN_POLLING_INTERVAL_S, QueuesOptions, StorageConnection

log = logging.getLogger("devtools.host")

POISON_SUFFIX = "-poison"
DEFAULT_MESSAGE_LEASE_S = 600  # QueueListener's visibility timeout while a message is processed


def poison_queue_name(queue_name: str) -> str | None:
    """``<queue>-poison``, or None when the host has no poison queue for ``queue_name``."""
    if queue_name.endswith(POISON_SUFFIX) or len(queue_name) + len(POISON_SUFFIX) > 63:
        return None
    return queue_name + POISON_SUFFIX


class Backoff:
    """azure-webjobs-sdk ``Timers/RandomizedExponentialBackoffStrategy.cs`` ``GetNextDelay``.

    A success resets to the minimum (exponent 1). Each empty poll adds
    ``uniform(0.8, 1.2) * 2**(exponent-1) * minimum`` to the minimum (the very first empty poll
    waits the minimum itself), until that reaches the maximum, which then stays.
    """

    def __init__(self, minimum: float, maximum: float, rng: random.Random) -> None:
        self.minimum, self.maximum, self.rng = minimum, maximum, rng
        self.current = 0.0
        self.exponent = 0

    def next_delay(self, succeeded: bool) -> float:
        if succeeded:
            self.current, self.exponent = self.minimum, 1
        elif self.current != self.maximum:
            interval = self.minimum
            if self.exponent > 0:
                interval += self.rng.uniform(0.8, 1.2) * 2.0 ** (self.exponent - 1) * self.minimum
            if interval < self.maximum:
                self.current = interval
                self.exponent += 1
            else:
                self.current = self.maximum
        return self.current


def encode(text: str | bytes, encoding: str) -> str:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii") if encoding == "base64" else raw.decode("utf-8")


class Lease:
    """A received message while we own it: the pop receipt changes with every renewal."""

    def __init__(self, client: QueueClient, message: QueueMessage) -> None:
        self.client = client
        self.id: str = message.id
        self.pop_receipt: str = message.pop_receipt or ""
        self.lock = threading.Lock()
        self.renewed_at = time.monotonic()
        self.finished = False


class QueueHost(Host, Protocol):
    """What a queue listener uses of the host besides :class:`Host`: options, clients and leases."""

    queues_options: QueuesOptions
    lease_seconds: int

    def client(self, connection: StorageConnection, queue_name: str) -> QueueClient: ...

    def send(self, connection: StorageConnection, queue_name: str, content: str) -> None: ...

    def count(self, name: str, field: str) -> None: ...

    def hold(self, lease: Lease) -> None: ...

    def release_hold(self, lease: Lease) -> None: ...

    def notify_idle(self) -> None: ...


class QueueListener:
    """Polls one queue for one function and processes what it receives."""

    def __init__(self, host: QueueHost, spec: FunctionSpec, max_workers: int) -> None:
        assert isinstance(spec.trigger, QueueTrigger)
        self.host = host
        self.spec = spec
        self.trigger: QueueTrigger = spec.trigger
        self.poison_queue = poison_queue_name(self.trigger.queue_name)
        self.wake = threading.Event()
        self.cond = threading.Condition()
        self.in_flight = 0
        self.delays: list[float] = []  # empty-poll delays taken, for the host's tests
        self.rng = random.Random()
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"fn-{spec.name}")
        self.thread = threading.Thread(target=self.run, name=f"poll-{spec.name}", daemon=True)

    def run(self) -> None:
        host, opts = self.host, self.host.queues_options
        backoff = Backoff(MIN_POLLING_INTERVAL_S, opts.max_polling_interval, self.rng)
        while not host.stopping.is_set():
            with self.cond:
                while self.in_flight > opts.new_batch_threshold and not host.stopping.is_set():
                    self.cond.wait(0.5)
            if host.stopping.is_set():
                break
            batch = self._receive()
            if batch:
                backoff.next_delay(succeeded=True)
                for message in batch:
                    self._submit(message)
                continue
            delay = backoff.next_delay(succeeded=False)
            self.delays.append(delay)
            if self.wake.wait(delay):
                backoff.next_delay(succeeded=True)  # QueueListener.Notify: poll again now
            self.wake.clear()

    def _receive(self) -> list[QueueMessage]:
        opts = self.host.queues_options
        try:
            client = self.host.client(self.trigger.connection, self.trigger.queue_name)
            return list(client.receive_messages(messages_per_page=opts.batch_size, max_messages=opts.batch_size,
                                                visibility_timeout=self.host.lease_seconds))
        except ResourceNotFoundError:  # the host never creates a trigger queue: polled as empty
            log.warning("Queue '%s' does not exist; polling it as empty", self.trigger.queue_name)
        except Exception as exc:  # connection refused while Azurite restarts, 5xx, ...
            log.warning("Polling queue '%s' for %s failed: %s", self.trigger.queue_name, self.spec.name, exc)
        return []

    def _submit(self, message: QueueMessage) -> None:
        with self.cond:
            self.in_flight += 1
        try:
            future = self.pool.submit(self.process, message)
        except RuntimeError:  # pool shut down between the receive and now
            self._done(None)
            return
        future.add_done_callback(self._done)

    def _done(self, future: Future[None] | None) -> None:
        with self.cond:
            self.in_flight -= 1
            self.cond.notify_all()
        self.host.notify_idle()

    # -- QueueProcessor ------------------------------------------------------------------------

    def process(self, message: QueueMessage) -> None:
        host = self.host
        lease = Lease(host.client(self.trigger.connection, self.trigger.queue_name), message)
        host.hold(lease)
        try:
            self._process(message, lease)
        except Exception:
            log.exception("Storage error while completing message %s of '%s'", message.id, self.trigger.queue_name)
        finally:
            host.release_hold(lease)

    def _process(self, message: QueueMessage, lease: Lease) -> None:
        opts = self.host.queues_options
        dequeue_count = message.dequeue_count or 1
        if dequeue_count > opts.max_dequeue_count:
            self._poison(message, lease)
            return
        try:
            body = self._decode(message.content or "")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            # Storage extension 5.x moves a message that fails messageEncoding decoding to the
            # poison queue without invoking (azure-sdk-for-net PR #18326).
            log.error("Message %s on '%s' does not decode as %s: poisoning it without invoking %s",
                      message.id, self.trigger.queue_name, opts.message_encoding, self.spec.name)
            self._poison(message, lease)
            return
        input_data, metadata = queue_trigger_data(
            self.trigger.param, body, message_id=message.id, dequeue_count=dequeue_count,
            inserted_on=message.inserted_on, expires_on=message.expires_on,
            next_visible_on=message.next_visible_on, pop_receipt=lease.pop_receipt)
        ok = self.host.invoke(self.spec, input_data, metadata,
                              reason=f"New queue message detected on '{self.trigger.queue_name}'.")
        if ok:
            self._settle(lease, delete=True)
        elif dequeue_count >= opts.max_dequeue_count:
            self._poison(message, lease)
        elif self.poison_queue is None:
            self._abandon(lease)  # no release: the message returns when its lease lapses
        else:
            self._settle(lease, delete=False, visibility=opts.visibility_timeout)

    def _decode(self, content: str) -> str:
        if self.host.queues_options.message_encoding == "base64":
            return base64.b64decode("".join(content.split()), validate=True).decode("utf-8")
        return content

    def _poison(self, message: QueueMessage, lease: Lease) -> None:
        if self.poison_queue is None:
            log.warning("Message %s on '%s' is past MaxDequeueCount and there is no poison queue: "
                        "skipped, not deleted", message.id, self.trigger.queue_name)
            self._abandon(lease)
            return
        log.warning("Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
                    self.host.queues_options.max_dequeue_count, self.poison_queue)
        # A new message with the original text (still in its original encoding).
        self.host.send(self.trigger.connection, self.poison_queue, message.content or "")
        self._settle(lease, delete=True)
        self.host.count(self.spec.name, "poisoned")

    def _abandon(self, lease: Lease) -> None:
        with lease.lock:
            lease.finished = True  # stop renewing: the 10-minute lease lapses on its own

    def _settle(self, lease: Lease, *, delete: bool, visibility: float = 0.0) -> None:
        with lease.lock:
            lease.finished = True
            try:
                if delete:
                    lease.client.delete_message(lease.id, lease.pop_receipt)
                else:
                    lease.client.update_message(lease.id, lease.pop_receipt, visibility_timeout=math.ceil(visibility))
            except ResourceNotFoundError:
                log.debug("Message %s or its queue is gone; nothing to settle", lease.id)
            except HttpResponseError as exc:
                if getattr(exc, "error_code", None) != "PopReceiptMismatch":
                    raise
                log.debug("Message %s: pop receipt did not match (someone else owns it)", lease.id)


def renew_leases(host: QueueHost, leases: set[Lease], changed: threading.Condition) -> None:
    """Keep in-flight messages invisible: renew each lease at half its life, like the host.

    ``changed`` guards ``leases`` and is notified when one is released (:meth:`release_hold`).
    Ends as soon as the host is stopping and no lease is held.
    """
    half = host.lease_seconds / 2
    interval = min(1.0, half / 2)
    while not (host.stopping.is_set() and not leases):
        if host.stopping.is_set():
            # Stopping while invocations still hold leases: renew them until the last one is
            # released, then end at once (not up to ``interval`` later, which every stop paid).
            with changed:
                changed.wait_for(lambda: not leases, interval)
        else:
            host.stopping.wait(interval)
        with changed:
            due = [lease for lease in leases if time.monotonic() - lease.renewed_at >= half]
        for lease in due:
            with lease.lock:
                if lease.finished:
                    continue
                try:
                    receipt = lease.client.update_message(lease.id, lease.pop_receipt,
                                                          visibility_timeout=host.lease_seconds)
                    lease.pop_receipt = receipt.pop_receipt or lease.pop_receipt
                    lease.renewed_at = time.monotonic()
                except Exception as exc:
                    log.warning("Could not renew the lease of message %s: %s", lease.id, exc)
