"""Cold start: time and peak RSS of fresh processes (median of ``--runs``, .pyc present).

Three fresh-process scenarios, each timed inside the child with ``time.perf_counter`` from
just before the first import (interpreter start-up itself is reported apart):

* ``import function_app`` — what the Python worker does when the instance starts;
* first dispatch — that import, then the first invocation of the ``dispatch`` function (real
  ``azure.functions.QueueMessage``, an ``Out``) creating one Job on the Kubernetes stand-in
  (its own process) with the queue clients pointed at an Azurite started by this script;
* every SDK eagerly — azure.mgmt.containerservice/network/authorization/resource,
  azure.identity, azure.storage.queue, kubernetes.client (+ one BatchV1Api) — then
  ``function_app``: what a design importing the management SDKs at module level would pay.

Peak RSS is the child's VmHWM (``/proc/self/status``): ``ru_maxrss`` is printed too, but on
Linux it carries over the launching process's peak across ``execve``. Usage: .venv/bin/python bench/cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._harness import REPO, KubeProcess, app_settings, machine, quiet_logs

PRELUDE = """
import json, resource, sys, time
t0 = time.perf_counter()
"""
EPILOGUE = """
out = {k: v for k, v in marks.items()}
# ru_maxrss survives execve on Linux (a child forked from a 55 MB parent reports >= 55 MB);
# VmHWM is the peak of this process image only. Both are kept.
out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["rss_mb"] = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
out["mgmt_loaded"] = sorted(m for m in sys.modules if m.startswith("azure.mgmt"))[:3]
print("RESULT " + json.dumps(out))
"""

IMPORT_APP = """
import function_app
marks = {"import_ms": (time.perf_counter() - t0) * 1000}
"""

FIRST_DISPATCH = """
import function_app
marks = {"import_ms": (time.perf_counter() - t0) * 1000}
import azure.functions as func
from azure.functions.queue import QueueMessage

class Out(func.Out):
    def __init__(self): self.value = None
    def set(self, val): self.value = val
    def get(self): return self.value

fn = next(f for f in function_app.app.get_functions() if f.get_function_name() == "dispatch")
user = fn.get_user_function()
body = json.dumps({"id": "cold-" + str(time.time_ns()), "image": "mcr.microsoft.com/azurelinux/base/core:3.0",
                   "command": ["sh", "-c", "echo cold"]}).encode()
t1 = time.perf_counter()
events = Out()
user(msg=QueueMessage(id="m-cold", body=body, dequeue_count=1), events=events)
assert not events.get(), events.get()
marks["first_invocation_ms"] = (time.perf_counter() - t1) * 1000
t2 = time.perf_counter()
body2 = body.replace(b"cold-", b"warm-")
user(msg=QueueMessage(id="m-warm", body=body2, dequeue_count=1), events=Out())
marks["second_invocation_ms"] = (time.perf_counter() - t2) * 1000
marks["total_ms"] = (time.perf_counter() - t0) * 1000
"""

EAGER = """
import azure.mgmt.containerservice, azure.mgmt.network, azure.mgmt.authorization, azure.mgmt.resource.resources
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
import azure.identity, azure.storage.queue, kubernetes.client
kubernetes.client.BatchV1Api()
import function_app
marks = {"import_ms": (time.perf_counter() - t0) * 1000}
"""

EMPTY = """
marks = {"import_ms": 0.0}
"""


def run_child(code: str, env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + code + EPILOGUE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, float] = json.loads(line[7:])
            return result
    raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    quiet_logs()
    from devtools.azurite import Azurite

    print(f"cold start, median of {args.runs} fresh processes, {machine()}")
    workdir = Path(tempfile.mkdtemp(prefix="vnb-cold-"))
    with Azurite(REPO) as azurite, KubeProcess(pod_start_seconds=3600) as kube:
        settings = app_settings(azurite.connection_string, kube.write_kubeconfig(workdir / "kubeconfig"), prefix="cold")
        azurite.queue_service().create_queue(settings["VNB_EVENTS_QUEUE"])
        env = {**os.environ, **settings, "PYTHONPATH": str(REPO)}
        scenarios = [
            ("interpreter only (python -c, json + resource)", EMPTY),
            ("import function_app", IMPORT_APP),
            ("import + first dispatch (1 Job created)", FIRST_DISPATCH),
            ("every SDK eagerly + function_app", EAGER),
        ]
        run_child(IMPORT_APP, env)  # compile .pyc once, outside the measurement
        for label, code in scenarios:
            results = [run_child(code, env) for _ in range(args.runs)]
            med = {k: statistics.median(float(r[k]) for r in results) for k in results[0] if k != "mgmt_loaded"}
            extra = ""
            if "first_invocation_ms" in med:
                extra = (
                    f"  (import {med['import_ms']:.0f} ms + first invocation {med['first_invocation_ms']:.0f} ms; "
                    f"a second invocation {med['second_invocation_ms']:.1f} ms)"
                )
            total = med.get("total_ms", med["import_ms"])
            mgmt = results[0]["mgmt_loaded"]
            print(
                f"  {label:<46} {total:6.0f} ms  peak RSS {med['rss_mb']:5.1f} MB (ru_maxrss {med['maxrss_mb']:5.1f}){extra}"
                + (f"  azure.mgmt loaded: {mgmt}" if mgmt and "eagerly" not in label else "")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
