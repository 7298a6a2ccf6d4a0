"""What every benchmark needs: Azurite, the Kubernetes stand-in (recording when each Job was
created), the app settings pointed at them, and small statistics helpers.

Not a test fixture module: the benchmarks are scripts (``.venv/bin/python bench/<name>.py``)
and print their figures; ``tests/soak`` imports ``bench.soak`` and, through it, this module.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devtools.standins.kube.apiserver import KubeStandIn  # noqa: E402

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
NEVER = "0 0 0 1 1 *"
"""An NCRONTAB that does not fire during a benchmark (once a year): keeps a timer out of a
measurement that is not about it."""


class TimedKubeStandIn(KubeStandIn):
    """The stand-in, plus the wall-clock moment each Job create succeeded (``time.time()`` right
    after the object was stored, before the response is written) and every create's outcome.

    ``job_creates[name]`` counts successful (201) POSTs per Job name: more than one for a name is
    a duplicate Job, except once more per capacity retry (``capacity_requeues``) and per Job
    deleted before it was reported and not for capacity (``taken_back``): dispatch deleting the
    Job it created for a request that finished meanwhile (shared/flows/dispatch.py, "The first
    Job finished and was deleted between our ledger read and our create", or its redelivery:
    ``shared.flows.take_back``), which ends in no outcome. A Job the reconciler marks reported
    before deleting it is not taken back: it ran. A subclass, not a patch: the stand-in is a
    devtool, read-only here.
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.created_at: dict[str, float] = {}
        self.job_creates: dict[str, int] = {}
        self.capacity_requeues: dict[str, int] = {}
        self.taken_back: dict[str, int] = {}
        self.create_statuses: dict[int, int] = {}
        self._times_lock = threading.Lock()

    def _dispatch(
        self, method: str, handler: str, p: dict[str, str], q: dict[str, str], body: bytes, ctype: str
    ) -> tuple[int, bytes, str]:
        before = self.job(str(p.get("ns")), str(p.get("name"))) if method == "DELETE" and handler == "job" else None
        try:
            code, payload, out_ctype = super()._dispatch(method, handler, p, q, body, ctype)
        except Exception as e:
            if method == "POST" and handler == "jobs":
                status = int(getattr(e, "code", 500))
                with self._times_lock:
                    self.create_statuses[status] = self.create_statuses.get(status, 0) + 1
            raise
        if method == "PATCH" and handler == "job" and code == 200 and b"vnode-batch.io/capacity-requeued" in body:
            # The app condemned this Job to give its request back to the queue (ACI refused it
            # for capacity): one more create of its name is legitimate.
            with self._times_lock:
                name = str(p.get("name"))
                self.capacity_requeues[name] = self.capacity_requeues.get(name, 0) + 1
        if before is not None and code == 200 and _taken_back(before):
            with self._times_lock:
                name = str(p.get("name"))
                self.taken_back[name] = self.taken_back.get(name, 0) + 1
        if method == "POST" and handler == "jobs" and code == 201 and q.get("dryRun") != "All":
            at = time.time()
            name = str(json.loads(payload)["metadata"]["name"])
            with self._times_lock:
                self.created_at.setdefault(name, at)
                self.job_creates[name] = self.job_creates.get(name, 0) + 1
                self.create_statuses[201] = self.create_statuses.get(201, 0) + 1
        return code, payload, out_ctype

    def created_count(self) -> int:
        with self._times_lock:
            return len(self.created_at)


def _taken_back(job: dict[str, Any]) -> bool:
    """Deleted by the app while unreported and not condemned for capacity (see TimedKubeStandIn)."""
    meta = job.get("metadata") or {}
    reported = (meta.get("labels") or {}).get("vnode-batch.io/state") == "reported"
    condemned = "vnode-batch.io/capacity-requeued" in (meta.get("annotations") or {})
    return not reported and not condemned and not meta.get("deletionTimestamp")


def app_settings(
    connection: str,
    kubeconfig: Path,
    *,
    prefix: str = "bench",
    reconcile_schedule: str = NEVER,
    **overrides: str,
) -> dict[str, str]:
    """local.settings.sample.json's values, pointed at this run's Azurite and stand-in."""
    values: dict[str, str] = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    values.update(
        {
            "AzureWebJobsStorage": connection,
            "VNB_REQUESTS_QUEUE": f"{prefix}-requests",
            "VNB_EVENTS_QUEUE": f"{prefix}-events",
            "VNB_FOLLOWUP_QUEUE": f"{prefix}-followup",
            "VNB_CLUSTER_MODE": "kubeconfig",
            "VNB_KUBECONFIG": str(kubeconfig),
            "VNB_RECONCILE_SCHEDULE": reconcile_schedule,
            "VNB_SCHEDULES_TIMER": NEVER,
            "VNB_ALLOWED_REGISTRIES": "mcr.microsoft.com,docker.io",
        }
    )
    if reconcile_schedule == NEVER:  # the reconciler parked: no follow-up passes either
        values["VNB_FOLLOWUP_SECONDS"] = "0"
    values.update(overrides)
    return values


def quiet_logs() -> None:
    """The app logs one INFO line per message; a benchmark keeps warnings only (like
    Application Insights sampling would keep the cost of the logging call, not the I/O)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("azure", "devtools", "vnode_batch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # 16 threads share one storage client whose requests pool keeps 10 connections: the extra
    # ones are closed after use, and urllib3 says so on every one. Both phases pay it alike.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    logging.getLogger("root").setLevel(logging.ERROR)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> str:
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPU(s), {platform.system()}"
    )


def peak_rss_mb() -> float:
    """ru_maxrss of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children) from /proc, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _kube_child(conn: Any, kw: dict[str, Any]) -> None:
    quiet_logs()
    kube = TimedKubeStandIn(**kw).start()
    while True:
        cmd, arg = conn.recv()
        if cmd == "stop":
            kube.stop()
            conn.send(None)
            return
        if cmd == "info":
            conn.send((kube.port, kube.ca_pem, kube.kubeconfig_dict()))
        elif cmd == "count":
            conn.send(kube.created_count())
        elif cmd == "state":
            with kube._times_lock:
                conn.send((dict(kube.created_at), dict(kube.job_creates), dict(kube.create_statuses)))
        elif cmd == "call":  # a method of the stand-in by name, e.g. ("restart", {...})
            name, kwargs = arg
            conn.send(getattr(kube, name)(**kwargs))
        elif cmd == "jobs":
            conn.send(kube.jobs(arg))
        elif cmd == "counts":
            conn.send(dict(kube.request_counts()))


class KubeProcess:
    """A :class:`TimedKubeStandIn` in its own process, so that its CPU (TLS, JSON, the Job
    controller) is neither counted in, nor competing for the GIL with, the process measured."""

    def __init__(self, **kw: Any) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_kube_child, args=(child, kw), daemon=True)
        self._lock = threading.Lock()
        self.port = 0
        self.ca_pem = b""

    def _ask(self, cmd: str, arg: Any = None) -> Any:
        with self._lock:
            self._conn.send((cmd, arg))
            return self._conn.recv()

    def __enter__(self) -> KubeProcess:
        self._proc.start()
        self.port, self.ca_pem, self._kubeconfig = self._ask("info")
        return self

    def __exit__(self, *exc: object) -> None:
        self._ask("stop")
        self._proc.join(10)

    @property
    def pid(self) -> int:
        assert self._proc.pid is not None
        return self._proc.pid

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(json.dumps(self._kubeconfig, indent=2))
        return path

    def created_count(self) -> int:
        return int(self._ask("count"))

    def state(self) -> tuple[dict[str, float], dict[str, int], dict[int, int]]:
        result: tuple[dict[str, float], dict[str, int], dict[int, int]] = self._ask("state")
        return result

    def call(self, name: str, **kwargs: Any) -> Any:
        return self._ask("call", (name, kwargs))

    def jobs(self, namespace: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._ask("jobs", namespace)
        return result

    def request_counts(self) -> dict[tuple[str, str], int]:
        result: dict[tuple[str, str], int] = self._ask("counts")
        return result
