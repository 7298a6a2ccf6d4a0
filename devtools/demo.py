"""The local demo (``./scripts/demo``): the real functions, Azurite, and a Kubernetes stand-in.

It starts Azurite (queues and tables) and the HTTPS Kubernetes stand-in with its simulated virtual node,
runs the app's own indexed functions in the local runner with the host's queue and timer
semantics, submits ``samples/requests.json`` (a job, an array job, a failing job, a bad
request), and prints Jobs as they appear on the virtual node and every event as it arrives,
until each request has its terminal event. Then it submits a long request through the HTTP API
that the local host serves (function key, real runtime), prints the ledger's listing
(``GET /api/requests``, what ``python -m shared.cli ls`` shows), cancels the long request while
it runs (``DELETE /api/requests/{id}``) and shows the ``job.cancelled`` event. Then it stops
everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from rich.console import Console

REPO = Path(__file__).resolve().parent.parent
TERMINAL = ("job.succeeded", "job.failed", "request.rejected", "request.deadlettered")


def demo_settings(azurite_connection: str, kubeconfig: Path, schedules_file: Path | None = None) -> dict[str, str]:
    """local.settings.sample.json, pointed at this run's Azurite and stand-in."""
    values: dict[str, str] = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    values.update(
        {
            "AzureWebJobsStorage": azurite_connection,
            "VNB_CLUSTER_MODE": "kubeconfig",
            "VNB_KUBECONFIG": str(kubeconfig),
            "VNB_RECONCILE_SCHEDULE": "*/2 * * * * *",
            "VNB_ALLOWED_REGISTRIES": "mcr.microsoft.com,docker.io",
        }
    )
    if schedules_file is not None:
        values["VNB_SCHEDULES_FILE"] = str(schedules_file)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", default=str(REPO / "samples" / "requests.json"))
    parser.add_argument("--timeout", type=float, default=90.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    # The kubeconfig, the timers' state and every temporary file of this process and of the
    # worker process (the stand-in's CA, the Kubernetes client's copy of it: the worker is killed,
    # so its atexit clean-up never runs) live in one directory, removed when the demo ends.
    with tempfile.TemporaryDirectory(prefix="vnb-demo-") as tmp:
        saved = os.environ.get("TMPDIR"), tempfile.tempdir
        os.environ["TMPDIR"] = tempfile.tempdir = tmp
        try:
            return _run(args, Path(tmp))
        finally:
            if saved[0] is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = saved[0]
            tempfile.tempdir = saved[1]


def _run(args: argparse.Namespace, workdir: Path) -> int:

    from devtools.azurite import Azurite
    from devtools.host import LocalHost
    from devtools.standins.kube.apiserver import KubeStandIn
    from shared.cli.main import encode_for_trigger, format_event, message_encoding

    console = Console(highlight=False, width=200, soft_wrap=True)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    requests: list[dict[str, Any]] = json.loads(Path(args.requests).read_text())

    console.print("[bold]vnode-batch local demo[/] — Azurite + Kubernetes stand-in + the app's functions\n")
    with Azurite(REPO) as azurite, KubeStandIn(pod_start_seconds=0.5) as kube:
        kubeconfig = kube.write_kubeconfig(workdir / "kubeconfig")
        console.print(f"  Azurite queues   http://127.0.0.1:{azurite.port}")
        console.print(f"  Kubernetes API   {kube.url}  (virtual node virtual-node-aci-linux, Ready)")
        settings = demo_settings(azurite.connection_string, kubeconfig)

        # The app runs on the real Python worker runtime in a worker process (devtools/host).
        # HTTP triggers on a free loopback port, guarded by a function key made up for this run.
        runner = LocalHost(
            REPO, settings=settings, host_json=REPO / "host.json", state_dir=workdir / "timers", http_port=0
        )
        service = azurite.queue_service()
        requests_q = service.get_queue_client(settings["VNB_REQUESTS_QUEUE"])
        events_q = service.get_queue_client(settings["VNB_EVENTS_QUEUE"])
        for q in (requests_q, events_q):
            with contextlib.suppress(ResourceExistsError):
                q.create_queue()
        with runner:
            console.print(f"  functions        {', '.join(sorted(f.name for f in runner.functions))}")
            console.print(f"  HTTP API         {runner.http_url}/api/requests  (x-functions-key required)\n")
            encoding = message_encoding(REPO / "host.json")
            for body in requests:
                requests_q.send_message(encode_for_trigger(json.dumps(body), encoding))
                console.print(f"[cyan]submitted[/]  {body.get('id')}  {body.get('image')}")
            console.print()

            seen_jobs: dict[str, str] = {}
            terminal = 0
            deadline = time.monotonic() + args.timeout
            while terminal < len(requests) and time.monotonic() < deadline:
                for job in kube.jobs(settings["VNB_NAMESPACE"]):
                    name = job["metadata"]["name"]
                    state = _job_state(job, kube)
                    if seen_jobs.get(name) != state:
                        seen_jobs[name] = state
                        console.print(f"[magenta]job[/]        {name}  {state}")
                for message in events_q.receive_messages(max_messages=32, visibility_timeout=30):
                    text = str(message.content)
                    events_q.delete_message(message)
                    event = json.loads(text)
                    kind = str(event.get("type", "")).removeprefix("io.vnodebatch.")
                    colour = {"job.succeeded": "green", "job.failed": "red"}.get(kind, "yellow")
                    console.print(f"[{colour}]event[/]      {format_event(event)}")
                    if kind in TERMINAL:
                        terminal += 1
                time.sleep(0.3)
            if terminal >= len(requests):
                _status_and_cancel(console, runner.http_url, runner.function_keys["default"], events_q)
                # The cancelled Job goes once the reconciler's next pass releases its finalizer.
                gone_by = time.monotonic() + 10
                while kube.jobs(settings["VNB_NAMESPACE"]) and time.monotonic() < gone_by:
                    time.sleep(0.5)
        left = len(kube.jobs(settings["VNB_NAMESPACE"]))
        if terminal >= len(requests):
            _cost_table(settings, console)
    console.print()
    if terminal >= len(requests):
        console.print(
            f"[bold green]done[/]: {len(requests)} requests, {terminal} terminal events; "
            f"{left} Jobs left (reported Jobs are deleted at once; the ledger remembers their keys)"
        )
        return 0
    console.print(f"[bold red]timed out[/]: {terminal} of {len(requests)} requests have a terminal event")
    return 1


def _cost_table(settings: dict[str, str], console: Console) -> None:
    """What ``python -m shared.cli cost --by team --since 1d`` prints, from the demo's ledger."""
    from shared.cli import cost as cli_cost
    from shared.config.settings import Settings

    console.print("\n[bold]$ python -m shared.cli cost --by team --since 1d[/]")
    args = argparse.Namespace(by="team", since="1d", csv=False, json=False)
    cli_cost.run(args, Settings.from_env(settings), console.file, sys.stderr)


def _status_and_cancel(console: Any, base_url: str, function_key: str, events_q: Any) -> None:
    """The requests API in action over HTTP on the local host (the same client as
    ``python -m shared.cli``): submit, list the ledger, cancel the request while it runs."""
    from shared.cli.api import ApiClient, format_record
    from shared.cli.main import format_event

    api = ApiClient(base_url=base_url, function_key=function_key)
    long = {"id": "demo-long-1", "image": "mcr.microsoft.com/azurelinux/base/core:3.0"}
    long |= {"command": ["sh", "-c", "sleep 600"], "labels": {"team": "demo"}}
    status, _, headers = api.call("POST", "/api/requests", body=json.dumps(long).encode())
    console.print(f"\n[cyan]POST {base_url}/api/requests[/]  {status}  Location: {headers.get('Location')}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and api.status("demo-long-1").get("state") != "running":
        time.sleep(0.5)
    console.print("[bold]GET /api/requests[/] (what `python -m shared.cli ls` prints):")
    for record in api.list({}).get("items", []):
        console.print(f"  {format_record(record)}")
    cancelled = api.cancel("demo-long-1")
    console.print(f"[cyan]DELETE /api/requests/demo-long-1[/]  {cancelled.get('state')}  ({cancelled.get('reason')})")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for message in events_q.receive_messages(max_messages=32, visibility_timeout=30):
            events_q.delete_message(message)
            event = json.loads(str(message.content))
            data = event.get("data") or {}
            console.print(f"[yellow]event[/]      {format_event(event)}  ran={data.get('ran')}")
            return
        time.sleep(0.3)


def _job_state(job: dict[str, Any], kube: Any) -> str:
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return f"{cond['type']} ({cond.get('reason', '')})".replace(" ()", "")
    pods = [
        p
        for p in kube.pods(job["metadata"]["namespace"])
        if p["metadata"].get("labels", {}).get("job-name") == job["metadata"]["name"]
    ]
    nodes = sorted({p["spec"].get("nodeName") or "unscheduled" for p in pods})
    return f"active={status.get('active', 0)} succeeded={status.get('succeeded', 0)} failed={status.get('failed', 0)} on {','.join(nodes) or '-'}"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
