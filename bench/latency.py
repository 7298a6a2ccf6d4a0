"""End-to-end latency on idle queues, with the shipped host.json and the shipped reconcile schedules.

For each reconcile schedule (the Azure default in infra/main.bicep, ``*/30 * * * * *``, and the
local one in local.settings.sample.json, ``*/10 * * * * *``) the local runner drives the app
with the shipped host.json (maxPollingInterval 2 s, so after an idle spell the requests queue
is polled every 2 s). Each sample:

1. waits until the requests queue has been idle ``--idle`` seconds (default 30: the polling
   back-off is at its 2 s maximum);
2. sends one request and notes the moment ``send_message`` returned (t_enqueue);
3. t_created: the stand-in's clock when it stored the Job (wall clock, same machine);
4. t_finished: the first moment a 10 ms poll of the stand-in sees the Job Complete;
5. t_event: the first moment a 20 ms poll of the events queue receives its job.succeeded.

Reported: enqueue → Job created and Job finished → event delivered (median and max over
``--samples``). Pods "start" 0.5 s after scheduling on the stand-in's virtual node (ACI itself
takes 60–110 s: that is not the app's latency and is left out).

Usage: .venv/bin/python bench/latency.py [--samples 3] [--idle 30] [--schedules "*/30 * * * * *" ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import IMAGE, REPO, TimedKubeStandIn, app_settings, machine, quiet_logs
from shared.config.settings import Settings
from shared.job.render import job_name

NS = "vnode-batch"


def _complete(job: dict[str, Any] | None) -> bool:
    for c in ((job or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Complete" and c.get("status") == "True":
            return True
    return False


def measure(azurite: Any, workdir: Path, schedule: str, samples: int, idle: float, tag: str) -> list[tuple[float, float]]:
    from devtools.host import LocalHost

    out: list[tuple[float, float]] = []
    with TimedKubeStandIn(pod_start_seconds=0.5) as kube:
        settings = app_settings(
            azurite.connection_string, kube.write_kubeconfig(workdir / f"kc-{tag}"), prefix=tag, reconcile_schedule=schedule
        )
        service = azurite.queue_service()
        requests_q = service.get_queue_client(settings["VNB_REQUESTS_QUEUE"])
        events_q = service.get_queue_client(settings["VNB_EVENTS_QUEUE"])
        for q in (requests_q, events_q):
            q.create_queue()
        app = Settings.from_env(settings)
        with LocalHost(REPO, settings=settings, host_json=REPO / "host.json", state_dir=workdir / f"timers-{tag}"):
            last_activity = time.time()
            for i in range(samples):
                while time.time() - last_activity < idle:
                    time.sleep(0.05)
                key = f"{tag}-{i}"
                name = job_name(key, settings=app)
                requests_q.send_message(json.dumps({"id": key, "image": IMAGE, "command": ["sh", "-c", "echo hi"]}))
                t_enqueue = time.time()
                while name not in kube.created_at:
                    time.sleep(0.005)
                t_created = kube.created_at[name]
                last_activity = t_created
                while not _complete(kube.job(NS, name)):
                    time.sleep(0.01)
                t_finished = time.time()
                t_event = 0.0
                while not t_event:
                    for m in events_q.receive_messages(max_messages=32, visibility_timeout=30):
                        events_q.delete_message(m)
                        event = json.loads(str(m.content))
                        if (event.get("data") or {}).get("requestKey") == key:
                            t_event = time.time()
                    time.sleep(0.02)
                out.append((t_created - t_enqueue, t_event - t_finished))
                print(
                    f"    sample {i + 1}: enqueue → Job created {t_created - t_enqueue:6.2f} s, "
                    f"Job finished → event {t_event - t_finished:6.2f} s",
                    flush=True,
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds the requests queue is idle before each request")
    parser.add_argument("--schedules", nargs="+", default=["*/30 * * * * *", "*/10 * * * * *"])
    args = parser.parse_args(argv)
    quiet_logs()
    from devtools.azurite import Azurite

    print(f"latency on idle queues: shipped host.json (maxPollingInterval 2 s), idle {args.idle:g} s, {machine()}")
    workdir = Path(tempfile.mkdtemp(prefix="vnb-latency-"))
    with Azurite(REPO) as azurite:
        for n, schedule in enumerate(args.schedules):
            print(f"  reconcile schedule {schedule!r}:", flush=True)
            res = measure(azurite, workdir, schedule, args.samples, args.idle, f"lat{n}")
            created = [r[0] for r in res]
            event = [r[1] for r in res]
            print(
                f"  => enqueue → Job created median {statistics.median(created):.2f} s (max {max(created):.2f}); "
                f"Job finished → event median {statistics.median(event):.2f} s (max {max(event):.2f})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
