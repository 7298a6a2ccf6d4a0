"""Cold start: time and peak RSS of fresh processes (median of ``--runs``, .pyc present).

Three fresh-process scenarios, each timed inside the child with ``time.perf_counter`` from
just before the first import (interpreter start-up itself is reported apart):

* ``import function_app`` — what the Python worker does when the instance starts;
* first dispatch through the runtime — ``azure_functions_runtime`` imported, worker init
  (imports and indexes ``function_app``), metadata, load, then the first ``InvocationRequest``
  of ``dispatch`` (host-shaped queue payload) creating one Job on the Kubernetes stand-in (its
  own process) with the queue clients pointed at an Azurite started by this script — what a
  cold Python 3.13 instance does before the first message is handled;
* every SDK eagerly — azure.mgmt.containerservice/network/authorization/resource,
  azure.identity, azure.storage.queue, azure.data.tables, kubernetes.client (+ one BatchV1Api) — then
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
# What the Python 3.13 worker does on a cold instance: the proxy imports the execution runtime,
# sends worker init (which imports and indexes function_app.py), metadata and load, then the
# first queue message arrives as an InvocationRequest. All through azure_functions_runtime's
# handle_event coroutines with the host-shaped payload the local host sends (devtools/host).
import asyncio, os
from azure_functions_runtime import handle_event, start_threadpool_executor
from devtools.host import protos
from devtools.host.worker import WorkerRequest
start_threadpool_executor()
loop = asyncio.new_event_loop()
def req(name, msg, props=None):
    return loop.run_until_complete(getattr(handle_event, name)(
        WorkerRequest(name, protos.StreamingMessage(**{name: msg}), props or {})))
app_dir = os.getcwd()
init = req("worker_init_request", protos.WorkerInitRequest(function_app_directory=app_dir),
           {"protos": protos, "host": "127.0.0.1"})
assert init.result.status == protos.StatusResult.Success, init.result.exception
meta = {m.name: m for m in req("functions_metadata_request", protos.FunctionsMetadataRequest(
    function_app_directory=app_dir)).function_metadata_results}
for m in meta.values():
    req("function_load_request", protos.FunctionLoadRequest(function_id=m.function_id, metadata=m))
marks = {"import_ms": (time.perf_counter() - t0) * 1000}
def invoke(key, message_id):
    body = json.dumps({"id": key, "image": "mcr.microsoft.com/azurelinux/base/core:3.0",
                       "command": ["sh", "-c", "echo cold"]})
    string = lambda v: protos.TypedData(string=v)
    js = lambda v: protos.TypedData(json=json.dumps(v))
    now = "2030-01-01T00:00:00+00:00"
    metadata = {"QueueTrigger": string(body), "Id": string(message_id), "PopReceipt": string("p"),
                "DequeueCount": js(1), "InsertionTime": js(now), "ExpirationTime": js(now),
                "NextVisibleTime": js(now)}
    r = req("invocation_request", protos.InvocationRequest(
        invocation_id=message_id, function_id=meta["dispatch"].function_id,
        input_data=[protos.ParameterBinding(name="msg", data=string(body))], trigger_metadata=metadata))
    assert r.result.status == protos.StatusResult.Success, r.result.exception
    assert not r.output_data, r.output_data  # created a Job: no event
t1 = time.perf_counter()
invoke("cold-" + str(time.time_ns()), "m-cold")
marks["first_invocation_ms"] = (time.perf_counter() - t1) * 1000
t2 = time.perf_counter()
invoke("warm-" + str(time.time_ns()), "m-warm")
marks["second_invocation_ms"] = (time.perf_counter() - t2) * 1000
marks["total_ms"] = (time.perf_counter() - t0) * 1000
"""

EAGER = """
import azure.mgmt.containerservice, azure.mgmt.network, azure.mgmt.authorization, azure.mgmt.resource.resources
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
import azure.identity, azure.storage.queue, azure.data.tables, kubernetes.client
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
            ("runtime init + first dispatch (1 Job created)", FIRST_DISPATCH),
            ("every SDK eagerly + function_app", EAGER),
        ]
        run_child(IMPORT_APP, env)  # compile .pyc once, outside the measurement
        totals: dict[str, float] = {}
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
            print(f"  {label:<46} {total:6.0f} ms  peak RSS {med['rss_mb']:5.1f} MB (ru_maxrss {med['maxrss_mb']:5.1f}){extra}"
                  + (f"  azure.mgmt loaded: {mgmt}" if mgmt and "eagerly" not in label else ""))
            totals[label] = total
        eager = totals["every SDK eagerly + function_app"]
        print(f"  ratio import function_app / every SDK eagerly: {totals['import function_app'] / eager:.2f} (target <= 0.45)")
        first = totals["runtime init + first dispatch (1 Job created)"]
        print(f"  ratio first dispatch through the runtime / every SDK eagerly: {first / eager:.2f} (the SDKs a dispatch needs load here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
