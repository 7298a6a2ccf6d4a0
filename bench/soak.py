"""Fault-injection soak: every request ends in exactly one terminal event, and nothing is lost.

What runs: Azurite (persistent, so it can be restarted mid-run with its messages), the HTTPS
Kubernetes stand-in (in this process, so it can be restarted and its request log read), and the
app's own functions in the local runner — dispatch, deadletter and the reconcile timer (every
second) — with the shipped host.json except shorter waits (maxPollingInterval 0.2 s,
visibilityTimeout 1 s; maxDequeueCount stays 5) and a 5 s message lease (so a message whose
delete failed while Azurite was down comes back in seconds, not the 10-minute default).

The requests (``--requests N``, reproducible with ``--seed``):
* 10 % malformed (not JSON, a missing image, a disallowed registry, an unknown field);
* 10 % duplicates: a second message with the same id and content as an earlier request;
* ~10 % failing Jobs (``sh -c "exit 3"``), ~10 % array Jobs (Indexed, 3 completions), the rest
  ordinary Jobs.

Faults while they flow: on every Kubernetes API call 5 % HTTP 500, 5 % slow (0.3 s) and 2 %
dropped connections — in the first half of the run before the request takes effect, in the
second half after it (the create happened, the answer was lost); a stand-in restart (1 s
down) at 40 % of the requests sent, an Azurite restart (1 s down) at 70 %.

A virtual-node outage at 55 %: virtual-kubelet stops for ``OUTAGE_SIMULATED_SECONDS`` (400
simulated seconds; the stand-in runs at ``TIME_SCALE`` = 0.05, so 20 s of wall clock). The node
goes Unknown after the 50 s grace, its pods are evicted 300 s later and stay Terminating until
virtual-kubelet is back, pods bound meanwhile are not created, log reads fail
(devtools/standins/kube/controllers/nodelifecycle.py). About 10 % of the Jobs sleep 200 simulated
seconds so that some run when the node goes: their requests end ``job.failed`` with reason
``VirtualNodeDown`` (the platform's failure, reported once, whether the pass that reports it runs
before or after virtual-kubelet removed the evicted pods), every other request as usual; any
other failure of an ordinary request is a wrong outcome.

Capacity faults (the stand-in's ACI model): the quota is exhausted — ACI allows 40 container
groups and 40 cores while the app believes in 50 (something else in the subscription holds the
rest), so the app waits on the queue at its budget and ACI still refuses some pods
(``ContainerGroupQuotaReached``); 20 creates are refused as throttled (429 ``TooManyRequests``) at
20 % and 20 more for regional capacity (409 ``ServiceUnavailable``) at 60 % of the requests sent.
None of that may end a request: 0 ``job.failed`` for a capacity reason (``capacity_failures``).

The ledger. A request is identified by its id (valid requests; its duplicates are the same
request) or by its message id (malformed ones). Expected: exactly one terminal event per request
— ``job.succeeded`` / ``job.failed`` (by ``data.requestKey``), ``request.rejected`` /
``request.deadlettered`` (by ``data.messageId``, or the original body for a message that went
through the poison queue). A duplicate message produces no event of its own. Delivery is
at-least-once: the same event id seen twice counts once and is reported as a raw repeat; two
*different* terminal event ids for one request are a duplicate outcome. No Job name may be
created (201) twice, except once more per capacity retry of its request (the app condemns a Job
with the ``vnode-batch.io/capacity-requeued`` annotation before it gives the request back) and
once more per Job dispatch took back (a duplicate message whose request finished between its
ledger read and its create: dispatch deletes that Job unreported, right after the create or, if
the create's answer was lost, when the message comes back; it has no outcome). A Job removed only
by the reconciler once finished (a stray Job: ``shared.flows.take_back``) ran the request again
and counts as a duplicated Job. At the end no message may be left in the requests or poison queue (the
events queue is drained by this script, as a consumer would).

Exit status 0 only with no lost request, no duplicate outcome, no duplicate Job, no unexpected
event and no leftover message.

Usage: .venv/bin/python bench/soak.py [--requests 1000] [--seed 1] [--timeout 300]
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import IMAGE, REPO, TimedKubeStandIn, app_settings, quiet_logs
from devtools.standins.virtual_node.provider import AciSettings
from devtools.standins.virtual_node.quotas import QuotaSettings
from shared.config.settings import Settings
from shared.job.render import job_name

PREFIX = "io.vnodebatch."
NS = "vnode-batch"
TERMINAL = {"job.succeeded", "job.failed", "request.rejected", "request.deadlettered"}

SOAK_HOST: dict[str, Any] = {
    "version": "2.0",
    "extensions": {
        "queues": {
            "maxPollingInterval": "00:00:00.200",
            "visibilityTimeout": "00:00:01",
            "batchSize": 16,
            "newBatchThreshold": 8,
            "maxDequeueCount": 5,
            "messageEncoding": "none",
        }
    },
}


@dataclass
class Planned:
    """One message to send. ``key`` is the ledger key (the request it belongs to)."""

    text: str
    kind: str  # ok, long, fail, array, malformed, duplicate
    key: str | None  # None for malformed: keyed by message id once sent


@dataclass
class Ledger:
    sent: int = 0
    requests: int = 0
    duplicates_sent: int = 0
    expected: dict[str, str] = field(default_factory=dict)  # ledger key → expected outcome kind
    outcomes: dict[str, set[str]] = field(default_factory=lambda: collections.defaultdict(set))
    outcome_types: dict[str, str] = field(default_factory=dict)  # event id → type
    outcome_reasons: dict[str, str] = field(default_factory=dict)  # event id → data.reason
    raw_events: int = 0
    repeated_event_ids: int = 0
    unexpected: list[str] = field(default_factory=list)
    duplicated_jobs: list[str] = field(default_factory=list)
    capacity_failures: list[str] = field(default_factory=list)
    capacity_retries: int = 0
    taken_back: int = 0
    """Jobs dispatch created for a request that finished meanwhile and deleted unreported (no outcome)."""
    exposed: set[str] = field(default_factory=set)
    """Requests whose Job existed when the virtual node went down or came back: one the outage
    failed says VirtualNodeDown, whether reported while its evicted pods were stranded or after
    virtual-kubelet deleted them (shared/outcomes/verdicts.py ``vanished_failures``)."""
    aci_refused: dict[str, int] = field(default_factory=dict)
    left_in_queues: dict[str, int] = field(default_factory=dict)
    finished_pods_left: list[str] = field(default_factory=list)
    """Pods of finished Jobs still there at the end: each holds an ACI container group."""
    kube_requests: int = 0
    kube_faults: str = ""
    elapsed: float = 0.0

    def node_down(self, ids: set[str]) -> bool:
        return all(self.outcome_reasons.get(i, "").startswith("VirtualNodeDown:") for i in ids)

    @property
    def evicted(self) -> int:
        """Requests whose Job the virtual-node outage failed."""
        return sum(1 for ids in self.outcomes.values() if self.node_down(ids))

    @property
    def outage_failures(self) -> int:
        """Ordinary requests failed, not as VirtualNodeDown, whose Job was in flight during the outage."""
        return sum(
            1
            for k in self.exposed
            if self.expected.get(k) == "job.succeeded"
            and self.outcomes.get(k)
            and not self.node_down(self.outcomes[k])
            and {self.outcome_types[i] for i in self.outcomes[k]} == {"job.failed"}
        )

    def count(self, kind: str) -> int:
        return sum(1 for ids in self.outcomes.values() for i in ids if self.outcome_types[i] == kind)

    @property
    def lost(self) -> list[str]:
        return sorted(k for k in self.expected if not self.outcomes.get(k))

    @property
    def duplicated_outcomes(self) -> list[str]:
        return sorted(k for k, ids in self.outcomes.items() if len(ids) > 1)

    @property
    def wrong(self) -> list[str]:
        """Requests whose single outcome is not the one their content calls for (a Job the
        virtual-node outage evicted fails with ``VirtualNodeDown``: that is its outcome)."""
        bad = []
        for key, ids in self.outcomes.items():
            want = self.expected.get(key)
            got = {self.outcome_types[i] for i in ids}
            if want == "job.succeeded" and got == {"job.failed"} and self.node_down(ids):
                continue
            if want and got and want not in got and "request.deadlettered" not in got:
                why = sorted({self.outcome_reasons.get(i, "") for i in ids})
                bad.append(f"{key}: expected {want}, got {sorted(got)} {why}")
        return bad

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated_outcomes
            or self.duplicated_jobs
            or self.capacity_failures
            or self.unexpected
            or self.wrong
            or any(self.left_in_queues.values())
            or self.finished_pods_left
        )

    def report(self) -> str:
        lines = [
            f"sent {self.sent} messages = {self.requests} requests + {self.duplicates_sent} duplicate messages "
            f"in {self.elapsed:.1f} s",
            f"  terminal outcomes: rejected {self.count('request.rejected')}, succeeded {self.count('job.succeeded')}, "
            f"failed {self.count('job.failed')}, deadlettered {self.count('request.deadlettered')}",
            f"  lost {len(self.lost)}, duplicated outcomes {len(self.duplicated_outcomes)}, "
            f"duplicated Jobs {len(self.duplicated_jobs)}, wrong outcome {len(self.wrong)}, "
            f"unexpected events {len(self.unexpected)}; failed by the virtual-node outage (VirtualNodeDown) "
            f"{self.evicted}, other failures of Jobs in flight during it {self.outage_failures}",
            f"  events received {self.raw_events}, repeated event ids (at-least-once, de-duplicated) "
            f"{self.repeated_event_ids}",
            f"  left in queues: {self.left_in_queues}; pods of finished Jobs left: {len(self.finished_pods_left)}",
            f"  Kubernetes API requests {self.kube_requests}; {self.kube_faults}",
            f"  ACI creates refused {self.aci_refused}; capacity retries {self.capacity_retries}; "
            f"capacity failures reported as job failures {len(self.capacity_failures)}; "
            f"Jobs taken back by dispatch (their request had finished) {self.taken_back}",
        ]
        for title, items in (
            ("lost", self.lost),
            ("duplicated outcomes", self.duplicated_outcomes),
            ("duplicated Jobs", self.duplicated_jobs),
            ("capacity failures", self.capacity_failures),
            ("finished pods left", self.finished_pods_left),
            ("wrong", self.wrong),
            ("unexpected", self.unexpected),
        ):
            if items:
                lines.append(f"  {title}: {items[:10]}")
        lines.append("PASS" if self.ok else "FAIL")
        return "\n".join(lines)


def plan(n: int, seed: int) -> list[Planned]:
    """N messages: 10 % malformed, 10 % duplicates of an earlier valid request, the rest valid
    (about one in eight of them failing, one in eight arrays). Shuffled deterministically."""
    rng = random.Random(seed)
    n_bad = n // 10
    n_dup = n // 10
    n_valid = n - n_bad - n_dup
    valid: list[Planned] = []
    for i in range(n_valid):
        key = f"soak-{seed}-{i:05d}"
        body: dict[str, Any] = {"id": key, "image": IMAGE, "correlationId": f"c-{i}"}
        r = rng.random()
        if r < 0.125:
            kind = "fail"
            body["command"] = ["sh", "-c", "exit 3"]
        elif r < 0.225:
            kind = "long"  # running when the virtual node goes, for some of them
            body["command"] = ["sh", "-c", f"echo {i}; sleep 200"]
        elif r < 0.35:
            kind = "array"
            body.update(command=["sh", "-c", "echo $JOB_COMPLETION_INDEX"], completions=3, parallelism=2)
        else:
            kind = "ok"
            body["command"] = ["sh", "-c", f"echo {i}"]
        valid.append(Planned(json.dumps(body), kind, key))
    bad: list[Planned] = []
    for i in range(n_bad):
        variant = i % 4
        if variant == 0:
            text = f"not json {seed}-{i} {{"
        elif variant == 1:
            text = json.dumps({"id": f"bad-{seed}-{i}", "command": ["true"]})  # no image
        elif variant == 2:
            text = json.dumps({"image": f"evil.example.com/x:{i}"})  # registry not allowed, no id
        else:
            text = json.dumps({"id": f"bad-{seed}-{i}", "image": IMAGE, "privileged": True})
        bad.append(Planned(text, "malformed", None))
    messages = valid + bad
    rng.shuffle(messages)
    # A duplicate goes after its original (a producer retry), anywhere later in the stream.
    for _ in range(n_dup):
        original = rng.choice(valid)
        at = messages.index(original)
        messages.insert(rng.randint(at + 1, len(messages)), Planned(original.text, "duplicate", original.key))
    return messages


EXPECTED = {
    "ok": "job.succeeded",
    "long": "job.succeeded",
    "array": "job.succeeded",
    "fail": "job.failed",
    "malformed": "request.rejected",
}


# The soak sends its messages in well under 5 minutes, so ACI's default create rates (100 per
# 5 minutes) would make it a rate test: they are raised (as a support request would) and the
# *concurrent* quotas are exhausted instead — ACI allows 40 groups and 40 cores while the app's
# budget says 50 (the rest of the subscription holds the difference): the app waits at its
# budget and ACI still refuses some pods (ContainerGroupQuotaReached), which must be retried,
# never reported. Rates against the defaults: bench/capacity.py.
SOAK_QUOTAS = AciSettings(
    quotas=QuotaSettings(
        container_groups=40, standard_cores=40, creates_per_5_minutes=100_000, creates_per_hour=100_000
    )
)


TIME_SCALE = 0.05
"""Wall-clock seconds per simulated second in the stand-in: the outage's 50 s grace and 300 s
eviction take 2.5 s and 15 s. The app's own clocks (timers, visibility, leases) are real."""
OUTAGE_SIMULATED_SECONDS = 400.0


def run_soak(
    requests: int = 1000,
    seed: int = 1,
    *,
    timeout: float = 300.0,
    workdir: Path | None = None,
    progress: bool = True,
) -> Ledger:
    from devtools.azurite import Azurite
    from devtools.host import LocalHost

    say = print if progress else (lambda *a, **k: None)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="vnb-soak-"))
    messages = plan(requests, seed)
    ledger = Ledger()
    body_key: dict[str, str] = {}
    started = time.monotonic()
    with (
        Azurite(REPO, persist_dir=workdir / "azurite") as azurite,
        TimedKubeStandIn(pod_start_seconds=1.0, aci=SOAK_QUOTAS, time_scale=TIME_SCALE) as kube,
    ):
        settings = app_settings(
            azurite.connection_string,
            kube.write_kubeconfig(workdir / "kubeconfig"),
            prefix=f"soak{seed}",
            reconcile_schedule="*/1 * * * * *",
            VNB_KUBE_TIMEOUT_SECONDS="3",
            VNB_CAPACITY_CONTAINER_GROUPS="50",
            VNB_CAPACITY_CORES="50",
            VNB_CAPACITY_CREATES_PER_5MIN="100000",
            VNB_CAPACITY_CREATES_PER_HOUR="100000",
            VNB_CAPACITY_DEFER_SECONDS="1",
            # A waiting request sleeps until woken, or at most this long: short, so that a copy
            # whose request ended meanwhile (a duplicate; the ledger keeps the last copy's handle
            # only) is back and dropped before the run counts what is left in the queues.
            VNB_CAPACITY_SLEEP_SECONDS="2",
            VNB_CAPACITY_CACHE_SECONDS="1",
            VNB_CAPACITY_MAX_ATTEMPTS="50",
        )
        app = Settings.from_env(settings)
        service = azurite.queue_service()
        requests_q = service.get_queue_client(settings["VNB_REQUESTS_QUEUE"])
        poison_q = service.get_queue_client(settings["VNB_REQUESTS_QUEUE"] + "-poison")
        events_q = service.get_queue_client(settings["VNB_EVENTS_QUEUE"])
        runner = LocalHost(
            REPO, settings=settings, host_json=SOAK_HOST, message_lease_seconds=5, state_dir=workdir / "timers"
        )
        seen_ids: dict[str, str] = {}

        def drain() -> None:
            try:
                batch = list(events_q.receive_messages(max_messages=32, visibility_timeout=30))
                for m in batch:
                    events_q.delete_message(m)
                    record(json.loads(str(m.content)))
            except Exception as e:  # Azurite restarting: try again on the next call
                logging.getLogger("soak").debug("draining events: %s", e)

        def record(event: dict[str, Any]) -> None:
            ledger.raw_events += 1
            kind = str(event.get("type", "")).removeprefix(PREFIX)
            event_id = str(event.get("id"))
            if event_id in seen_ids:
                ledger.repeated_event_ids += 1
                return
            seen_ids[event_id] = kind
            if kind not in TERMINAL:
                return
            data = event.get("data") or {}
            key = data.get("requestKey") if kind.startswith("job.") else None
            if key is None:
                key = body_key.get(str(data.get("messageId"))) or body_key.get(str(data.get("body")))
            if key is None or key not in ledger.expected:
                ledger.unexpected.append(f"{kind} {event_id} {json.dumps(data)[:200]}")
                return
            if kind == "job.failed" and _capacity_reason(data):
                ledger.capacity_failures.append(f"{key}: {data.get('reason')}: {str(data.get('message'))[:160]}")
            ledger.outcomes[key].add(event_id)
            ledger.outcome_types[event_id] = kind
            ledger.outcome_reasons[event_id] = f"{data.get('reason')}: {str(data.get('message'))[:200]}"

        runner.start()
        try:
            kube.set_fault_rates(error_rate=0.05, slow_rate=0.05, slow_seconds=0.3, drop_rate=0.02, seed=seed)
            kube_restart_at, azurite_restart_at, after_at = (int(len(messages) * f) for f in (0.4, 0.7, 0.5))
            throttle_at, no_capacity_at, outage_at = (int(len(messages) * f) for f in (0.2, 0.6, 0.55))
            job_keys = {job_name(m.key, settings=app): m.key for m in messages if m.key}

            def exposed() -> None:
                ledger.exposed.update(
                    job_keys[n] for n in (j["metadata"]["name"] for j in kube.jobs(NS)) if n in job_keys
                )

            def node_back() -> None:
                exposed()
                kube.virtual_node_up()

            outage_over = threading.Timer(OUTAGE_SIMULATED_SECONDS * TIME_SCALE, node_back)
            for i, m in enumerate(messages):
                if i == throttle_at:
                    kube.aci.inject("TooManyRequests", 20)
                if i == no_capacity_at:
                    kube.aci.inject("ServiceUnavailable", 20)
                if i == outage_at:
                    say(
                        f"  [{time.monotonic() - started:5.1f}s] virtual-kubelet stops for "
                        f"{OUTAGE_SIMULATED_SECONDS:.0f} simulated s ({OUTAGE_SIMULATED_SECONDS * TIME_SCALE:.0f} s)"
                    )
                    kube.virtual_node_down()
                    exposed()
                    outage_over.start()
                if i == kube_restart_at:
                    say(f"  [{time.monotonic() - started:5.1f}s] restarting the Kubernetes stand-in (1 s down)")
                    kube.restart(1.0)
                if i == after_at:
                    kube.set_fault_rates(
                        error_rate=0.05, slow_rate=0.05, slow_seconds=0.3, drop_rate=0.02, seed=seed + 1, after=True
                    )
                if i == azurite_restart_at:
                    say(f"  [{time.monotonic() - started:5.1f}s] restarting Azurite (1 s down, persistent)")
                    azurite.restart(1.0)
                message_id = str(requests_q.send_message(m.text).id)
                ledger.sent += 1
                if m.kind == "duplicate":
                    ledger.duplicates_sent += 1
                    continue
                ledger.requests += 1
                key = m.key or f"msg:{message_id}"
                ledger.expected[key] = EXPECTED[m.kind]
                body_key[message_id] = key
                body_key[m.text] = key
                if i % 16 == 0:
                    drain()
            say(f"  [{time.monotonic() - started:5.1f}s] all {ledger.sent} messages sent; waiting for outcomes")
            deadline = time.monotonic() + timeout
            next_note = time.monotonic() + 10
            while ledger.lost and time.monotonic() < deadline:
                drain()
                time.sleep(0.2)
                if time.monotonic() >= next_note:
                    next_note += 10
                    pods = kube.pods("vnode-batch")
                    phases = collections.Counter(str((p.get("status") or {}).get("phase")) for p in pods)
                    say(
                        f"  [{time.monotonic() - started:5.1f}s] {len(ledger.expected) - len(ledger.lost)}/"
                        f"{len(ledger.expected)} requests ended; ACI groups in use "
                        f"{kube.aci.counters.groups_in_use}; pods {dict(phases)}; Jobs {len(kube.jobs('vnode-batch'))}"
                    )
            # Faults off, then let anything still in flight (a late repeat, a second outcome)
            # arrive before counting: three reconcile periods after the queues are idle.
            kube.clear_faults()
            try:
                runner.run_until_idle(settle_seconds=3.0, timeout=60)
            except TimeoutError as e:
                say(f"  runner not idle: {e}")
            end = time.monotonic() + 3
            while time.monotonic() < end:
                drain()
                time.sleep(0.2)
        finally:
            if outage_over.is_alive():  # cut short (timeout, Ctrl-C): the node comes back now
                outage_over.cancel()
                kube.virtual_node_up()
            runner.stop()
        drain()
        for q in (requests_q, poison_q):
            ledger.left_in_queues[q.queue_name] = int(q.get_queue_properties().approximate_message_count)
        jobs_by_uid = {j["metadata"]["uid"]: j for j in kube.jobs("vnode-batch")}
        for pod in kube.pods("vnode-batch"):
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                continue
            owner = jobs_by_uid.get((pod["metadata"].get("labels") or {}).get("batch.kubernetes.io/controller-uid"))
            state = (
                "no Job"
                if owner is None
                else f"Job {owner['metadata'].get('labels', {}).get('vnode-batch.io/state')} "
                f"{[c['type'] for c in (owner.get('status') or {}).get('conditions') or [] if c.get('status') == 'True']}"
                f" deleting={bool(owner['metadata'].get('deletionTimestamp'))}"
                f" ann={sorted(k for k in owner['metadata'].get('annotations', {}) if 'capacity' in k or 'verdict' in k)}"
            )
            ledger.finished_pods_left.append(f"{pod['metadata']['name']} {pod['status'].get('phase')}: {state}")
        ledger.duplicated_jobs = sorted(
            f"{name} (created {n} times, {kube.capacity_requeues.get(name, 0)} capacity retries, "
            f"{kube.taken_back.get(name, 0)} taken back)"
            for name, n in kube.job_creates.items()
            if n > 1 + kube.capacity_requeues.get(name, 0) + kube.taken_back.get(name, 0)
        )
        ledger.taken_back = sum(kube.taken_back.values())
        ledger.capacity_retries = sum(kube.capacity_requeues.values())
        ledger.aci_refused = dict(kube.aci.counters.creates_refused)
        counts = kube.request_counts()
        ledger.kube_requests = sum(counts.values())
        ledger.kube_faults = "Job creates answered (after any fault before the call): " + ", ".join(
            f"{k}: {v}" for k, v in sorted(kube.create_statuses.items())
        )
    ledger.elapsed = time.monotonic() - started
    return ledger


def _capacity_reason(data: dict[str, Any]) -> bool:
    """A job.failed that is really ACI's capacity (what the app must retry, never report)."""
    from shared.capacity.model import is_capacity_message

    return data.get("reason") == "CapacityExhausted" or (
        data.get("reason") == "ProviderFailed" and is_capacity_message(str(data.get("message") or ""))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for outcomes after sending")
    args = parser.parse_args(argv)
    quiet_logs()
    logging.getLogger("devtools").setLevel(logging.CRITICAL)  # expected: polls failing while Azurite restarts
    logging.getLogger("vnode_batch").setLevel(logging.CRITICAL)
    print(f"soak: {args.requests} messages, seed {args.seed}")
    ledger = run_soak(args.requests, args.seed, timeout=args.timeout)
    print(ledger.report())
    return 0 if ledger.ok else 1


if __name__ == "__main__":
    sys.exit(main())
