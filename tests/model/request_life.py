"""The request life as a hypothesis state machine over the real services (dispatch, reconcile,
deadletter, the requests API, the ledger) in the in-memory world of ``tests.model.world``.

Any interleaving of: producers sending requests (duplicates, invalid ones, ones wider than the
capacity budget, ones reusing another request's id), API submits and cancels, deliveries and
redeliveries (after a crash between a service's ledger write and its event, or two copies of one
delivery at once), poisoned messages, reconcile passes, Jobs starting, succeeding, failing or
refused by ACI for capacity (a give-back), a Job finishing between dispatch's ledger read and
its create, a DELETE landing while the reconciler reads logs or
while dispatch creates the Job, Table and queue faults, cluster readiness and capacity changing,
time passing beyond the waits.

Checked after every step (``invariants``) and once everything is drained (``teardown``):

* one outcome: at most one terminal event id per request, ever; exactly one once drained
  (but for a poisoned body the host gave up on: every try of it failed, see ``World.stranded``);
* the ledger agrees: an event about a request is sent only after the ledger holds that very
  outcome (state and event id), and once drained every record is terminal with its event sent;
* never a Job after a terminal state: no live Job was created after its request ended;
* a message reusing another request's id never changes that request's record;
* one Job per request: no more Jobs created for a request than one, plus one per give-back and
  per Job taken back unreported (``one_job_per_request``, the soak's count).

``bench/stateful.py`` runs it for minutes; ``tests/model/test_request_life.py`` runs it bounded.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared.flows.deadletter import identify
from shared.ledger.records import TERMINAL, partition_key
from tests.model.world import STATE_OF_TYPE, Crash, Message, World

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
KEYS = [f"k{i}" for i in range(3)]


def body(key: str, variant: str = "ok") -> bytes:
    request: dict[str, Any] = {"id": key, "image": IMAGE, "correlationId": f"c-{key}"}
    if variant == "big":  # valid, but 6 cores at once against VNB_CAPACITY_CORES=4
        request.update(cpu=2, completions=3, parallelism=3)
    elif variant == "other":  # valid, another request's id with other content
        request["args"], request["command"] = ["other"], ["echo"]
    elif variant == "invalid":
        request.pop("image")
    elif variant == "bad-id":  # an id JSON allows and UTF-8 cannot encode, plus an invalid correlation id
        request["id"], request["correlationId"] = "bad\ud800id/#?", "\ud800" * 300
    return json.dumps(request).encode()


class RequestLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.foreign: set[str] = set()
        """Queue message ids of messages that reuse another request's id."""
        self.post_later: list[bytes] = []
        self.bad = 0

    # --- producers and clients -----------------------------------------------------------------

    @rule(
        key=st.sampled_from(KEYS),
        variant=st.sampled_from(["ok", "ok", "ok", "big", "invalid", "bad-id", "spoof-other", "spoof-invalid"]),
    )
    def send(self, key: str, variant: str) -> None:
        """A producer's message: a request (again: a duplicate), one wider than the capacity
        budget, an invalid one, one with an id UTF-8 cannot encode, or one reusing the id of a
        request the ledger already holds (its events are about that message only)."""
        if variant.startswith("spoof-"):
            if key in self.world.table.records():
                self.foreign.add(self.world.produce(body(key, variant.removeprefix("spoof-")).decode()).id)
            return
        if variant in ("invalid", "bad-id"):
            self.bad += 1
            key = f"bad-{self.bad}"
        elif variant == "big":
            key = f"big-{key}"
        self.world.produce(body(key, variant).decode())

    @rule(key=st.sampled_from(KEYS), big=st.booleans())
    def post(self, key: str, big: bool) -> None:
        self._post(body(f"big-{key}", "big") if big else body(key))

    def _call(self, call: Any) -> int:
        """One HTTP call; a crash of the function is a 5xx to the client."""
        try:
            answer = self.world.api.handle(call)
        except Crash:
            return 502
        return answer.status

    def _post(self, raw: bytes) -> None:
        status = self._call(lambda: self.world.api.submit(raw, content_type="application/json"))
        assert status in (202, 409, 502, 503), status
        if status >= 500:  # the client retries
            self.post_later.append(raw)

    @rule(key=st.sampled_from(KEYS))
    def cancel(self, key: str) -> None:
        status = self._call(lambda: self.world.api.cancel(key))
        assert status in (200, 404, 409, 502, 503), status

    # --- the host -----------------------------------------------------------------------------

    @precondition(lambda self: self.world.queue)
    @rule(i=st.integers(0, 50), crash=st.booleans(), twice=st.booleans())
    def deliver(self, i: int, crash: bool, twice: bool) -> None:
        world = self.world
        message = world.queue[i % len(world.queue)]
        # A crash only after a message whose key the poison copy can tell (see docs/api.md's limits).
        crash = crash and message.crashes < 1 and b"bad" not in message.body
        message.crashes += crash
        before = self._victim(message)
        if twice and not message.poison:  # the lease lapsed mid-run: a second copy of the same delivery
            clone = Message(message.id, message.body, message.dequeue_count, message.inserted_at)
            world.queue.append(clone)
            world.deliver(clone)
        if message in world.queue:
            world.deliver(message, crash=crash)
        if before is not None:
            assert self._victim(message) == before, "a message reusing an id changed the other request's record"

    @precondition(lambda self: self.world.queue and self.world.cluster.unfinished())
    @rule(i=st.integers(0, 50), j=st.integers(0, 20))
    def deliver_while_a_job_finishes(self, i: int, j: int) -> None:
        """A delivery during which a Job succeeds and a reconcile pass reports it (and deletes it:
        VNB_KEEP_FINISHED_SECONDS=0) between dispatch's ledger read and its create."""
        world = self.world
        live = world.cluster.unfinished()
        name = live[j % len(live)]

        def finish() -> None:
            if name in world.cluster.unfinished():
                world.cluster.progress(name, "succeed")
                world.reconcile()

        world.admission.on_admit = finish
        try:
            self.deliver(i, crash=False, twice=False)
        finally:
            world.admission.on_admit = None

    def _victim(self, message: Message) -> Any:
        if message.id not in self.foreign:
            return None
        key = json.loads(message.body)["id"]
        row = self.world.table.rows.get(partition_key(key))
        return None if row is None else row[0]

    @rule(cancel_during_log_read=st.booleans(), i=st.integers(0, 20))
    def reconcile(self, cancel_during_log_read: bool, i: int) -> None:
        """A timer run; or one during which a DELETE of a Job's request lands while the
        reconciler reads that Job's logs (slow on ACI)."""
        jobs = sorted(self.world.cluster.jobs.values(), key=lambda j: j["metadata"]["name"])
        if cancel_during_log_read and jobs:
            key = jobs[i % len(jobs)]["metadata"]["annotations"]["vnode-batch.io/key"]
            self.world.cluster.on_log = lambda: self.cancel(key)
        self.world.reconcile()
        self.world.cluster.on_log = None

    @precondition(lambda self: self.world.cluster.unfinished())
    @rule(i=st.integers(0, 20), how=st.sampled_from(["start", "succeed", "succeed", "fail", "refuse"]))
    def progress(self, i: int, how: str) -> None:
        """A Job starts, succeeds, fails, or ACI refuses its pod for quota (a capacity give-back)."""
        live = self.world.cluster.unfinished()
        self.world.cluster.progress(live[i % len(live)], how)

    # --- faults and the weather ---------------------------------------------------------------

    @rule(
        kind=st.sampled_from(
            [
                "table",
                "cluster",
                "send_fails",
                "crash_after_send",
                "enqueue_fails",
                "refuse:422",
                "refuse:webhook",
                "refuse:rbac",
                "refuse:",
                "ready",
                "capacity",
                "cancel_on_create",
                "lose:create",
                "lose:delete",
                "lose:annotate",
                "lose:mark",
                "enqueue_lost",
            ]
        ),
        n=st.integers(1, 3),
    )
    def weather(self, kind: str, n: int) -> None:
        """Table faults (transient), Kubernetes faults, an events-queue send that fails or a
        process that dies right after sending, a requests-queue send that fails, creates refused
        (422, a webhook's 403, a missing role's 403) or accepted again, the cluster readiness or
        the capacity flipping, a DELETE landing while dispatch creates the Job, a Kubernetes call
        or a requeue that takes effect with its answer lost."""
        world = self.world
        if kind == "table":
            world.table.fail_next = n
        elif kind == "cluster":
            world.cluster.fail_next = min(n, 2)
        elif kind in ("send_fails", "crash_after_send", "enqueue_fails", "enqueue_lost"):
            setattr(world, kind, 1)
        elif kind.startswith("lose:"):
            world.cluster.lose_next[kind.removeprefix("lose:")] = 1
        elif kind.startswith("refuse:"):
            world.cluster.refuse = kind.removeprefix("refuse:") or None
        elif kind == "ready":
            world.ready = not world.ready
        elif kind == "capacity":
            world.admission.open = not world.admission.open
        else:
            world.cluster.on_create = self.cancel

    @rule(seconds=st.sampled_from([5, 60, 700, 1300]))
    def tick(self, seconds: int) -> None:
        self.world.clock += timedelta(seconds=seconds)

    # --- what must always hold ------------------------------------------------------------------

    def _about(self) -> dict[str, set[tuple[str, str]]]:
        """Terminal events about each request key: {key: {(event id, type)}} (foreign messages'
        rejections are about those messages, not the request whose id they reuse)."""
        out: dict[str, set[tuple[str, str]]] = {}
        for sent in self.world.sent:
            event = sent.event
            data = event["data"]
            if event["type"] == "io.vnodebatch.request.rejected" and data.get("messageId") in self.foreign:
                continue
            key = data.get("requestKey")
            if key is not None:
                out.setdefault(key, set()).add((event["id"], event["type"]))
        return out

    @invariant()
    def one_outcome_and_the_ledger_agrees(self) -> None:
        records = self.world.table.records()
        for key, sent in self._about().items():
            assert len({i for i, _ in sent}) == 1, f"{key}: more than one terminal event id: {sorted(sent)}"
            [(event_id, kind)] = sent
            record = records.get(key)
            assert record is not None, f"{key}: an event ({kind}) but no ledger record"
            assert record.terminal, f"{key}: {kind} sent while the ledger says {record.state}"
            assert record.event_id == event_id, f"{key}: sent {event_id}, the ledger holds {record.event_id}"
            assert record.state == STATE_OF_TYPE[kind], f"{key}: {kind} sent, the ledger says {record.state}"

    @invariant()
    def never_a_job_after_a_terminal_state(self) -> None:
        cluster, records, ended = self.world.cluster, self.world.table.records(), self.world.table.terminal_at
        for name in cluster.live():
            job = cluster.jobs[name]
            key = job["metadata"]["annotations"]["vnode-batch.io/key"]
            record = records.get(key)
            if record is not None and record.terminal:
                created = cluster.created_at[job["metadata"]["uid"]]
                assert created <= ended[key], f"Job {name} created at step {created}, after {key} ended at {ended[key]}"

    @invariant()
    def one_job_per_request(self) -> None:
        """Jobs created per request: one, once more per give-back (the reconciler condemned the
        Job for capacity) and per Job taken back unreported (dispatch, or a cancel)."""
        cluster = self.world.cluster
        for key, n in cluster.creates.items():
            allowed = 1 + cluster.condemned[key] + cluster.taken_back[key]
            assert n <= allowed, (
                f"{key}: {n} Jobs created, {cluster.condemned[key]} give-back(s), {cluster.taken_back[key]} taken back"
            )

    @invariant()
    def count_steps(self) -> None:
        self.world.step += 1

    def teardown(self) -> None:
        """Drain: faults off, the cluster ready with room, clients retry what got a 503, Jobs run
        to the end; then every request is terminal with exactly its one event sent."""
        world = self.world
        world.table.fail_next = world.cluster.fail_next = 0
        world.send_fails = world.crash_after_send = world.enqueue_fails = world.enqueue_lost = 0
        world.cluster.lose_next.clear()
        world.cluster.refuse, world.cluster.on_create, world.cluster.on_log = None, None, None
        world.ready, world.admission.open = True, True
        for _ in range(60):
            posts, self.post_later = self.post_later, []
            for raw in posts:
                self._post(raw)
            # A DELETE answered 5xx is not repeated here: a cancel cut short after its claim must be
            # completed by the dispatcher, the deadletter function or the reconciler that next
            # meets the request (``shared.ledger.outcome_writer.unsent``).
            while world.queue:
                world.deliver(world.queue[0])
            for name in world.cluster.unfinished():
                world.cluster.progress(name, "succeed")
            world.reconcile(sweep=True)
            world.clock += timedelta(seconds=30)
            if not world.queue and not world.cluster.jobs and not world.ledger.pending(world.clock):
                break
        assert not world.queue, "the queue did not drain"
        assert not world.cluster.jobs, "Jobs are left"
        self.one_outcome_and_the_ledger_agrees()
        about = self._about()
        # docs/api.md's limits: a poisoned body whose every try failed (the ledger and the queue
        # down for maxDequeueCount leases) stays in the poison queue, its request without an event.
        stranded = {identify(m.body).key for m in world.stranded}
        for key, record in world.table.records().items():
            if key in stranded:
                continue
            assert record.state in TERMINAL, f"{key} is still {record.state} after draining"
            assert key in about, f"{key} ended {record.state} (event {record.event_id}) but no event was sent"
