"""What one ``cli top`` frame costs with many requests waiting: the time to read it (GET
/api/summary plus GET /api/requests pages of both waiting states, through the local host's HTTP
front end and the real worker runtime) and to render it, and how many API calls that took.

The ledger is seeded directly (``Ledger.create`` of waiting records, half waiting for capacity,
half for the cluster), in steps, so each row is the cost at that many waiting requests. The
queue and timer functions are disabled (``AzureWebJobs.<name>.Disabled``): only the API runs.
Against a fresh Azurite on loopback; the Kubernetes stand-in answers the summary's usage reads.

Usage: .venv/bin/python bench/top_frame.py [--steps 0,200,1000,2000] [--frames 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import KubeProcess, app_settings, machine, quiet_logs
from devtools.azurite import Azurite
from shared.adapters.tables import Tables
from shared.cli import top
from shared.cli.api import ApiClient
from shared.config.settings import Settings
from shared.ledger.records import State, new_record
from shared.ledger.store import Ledger

REPO = Path(__file__).resolve().parent.parent


class CountingClient(ApiClient):
    """The CLI's client, counting its calls."""

    calls = 0

    def call(self, *args: object, **kwargs: object) -> tuple[int, dict[str, object], dict[str, str]]:
        type(self).calls += 1
        return super().call(*args, **kwargs)  # type: ignore[arg-type]


def seed(ledger: Ledger, start: int, stop: int, now: datetime) -> None:
    for i in range(start, stop):
        state = State.WAITING_FOR_CAPACITY if i % 2 else State.WAITING_FOR_CLUSTER
        ledger.create(new_record(f"wait-{i:05d}", state, now - timedelta(seconds=i), team=None))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--steps", default="0,200,1000,2000", help="waiting requests at each row")
    parser.add_argument("--frames", type=int, default=5, help="frames read per row")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    quiet_logs()
    print(f"bench/top_frame.py: {machine()}")
    from rich.console import Console

    from devtools.host import LocalHost

    with tempfile.TemporaryDirectory() as tmp, Azurite(REPO) as azurite, KubeProcess(pod_start_seconds=0.05) as kube:
        kubeconfig = kube.write_kubeconfig(Path(tmp) / "kubeconfig")
        env = app_settings(azurite.connection_string, kubeconfig, prefix="top")
        off = {f"AzureWebJobs.{n}.Disabled": "true" for n in ("dispatch", "deadletter", "reconcile", "schedules")}
        ledger = Ledger(Tables(Settings.from_env(env)))
        with LocalHost(
            REPO, settings={**env, **off}, host_json=REPO / "host.json", state_dir=Path(tmp) / "host", http_port=0
        ) as host:
            sink = Console(file=io.StringIO(), width=160)
            client = CountingClient(base_url=host.http_url, function_key=host.function_keys["default"])
            top.fetch(client, now=datetime.now(UTC), waits=5)  # warm-up: imports, connections
            seeded = 0
            for step in steps:
                seed(ledger, seeded, step, datetime.now(UTC))
                seeded = max(seeded, step)
                reads, renders = [], []
                CountingClient.calls = 0
                for _ in range(args.frames):
                    t0 = time.perf_counter()
                    frame = top.fetch(client, now=datetime.now(UTC), waits=5)
                    t1 = time.perf_counter()
                    sink.print(top.render(frame, source=host.http_url))
                    renders.append((time.perf_counter() - t1) * 1000)
                    reads.append((t1 - t0) * 1000)
                print(
                    f"  {seeded:>5} waiting: read {statistics.median(reads):7.1f} ms (median of {args.frames}), "
                    f"render {statistics.median(renders):5.1f} ms, {CountingClient.calls / args.frames:.0f} API calls"
                    f" per frame; longest wait shown: {frame.waits[0].id if frame.waits else '-'}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
