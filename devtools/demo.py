"""The local demo (``./scripts/demo``): the real functions, Azurite, and a Kubernetes stand-in.

It starts Azurite (queues and tables) and the HTTPS Kubernetes stand-in with its simulated virtual node,
runs the app's own indexed functions in the local runner with the host's queue and timer
semantics, submits ``samples/requests.json`` (a job, an array job, a failing job, a bad
request), and prints Jobs as they appear on the virtual node and every event as it arrives,
until each request has its terminal event. Then it submits a long request through the HTTP API
that the local host serves (function key, real runtime), prints the ledger's listing
(``GET /api/requests``, what ``python -m shared.cli ls`` shows), cancels the long request while
it runs (``DELETE /api/requests/{id}``) and shows the ``job.cancelled`` event, then the cost
report. Last, one request with a private image, a secret file and an output blob (issue 17): a
container registry, a Key Vault and a data account (Azurite's blob service) as HTTPS stand-ins the
app reaches with its managed identity (the identity stand-in's Entra tokens), served by a second
host with those settings; the container reads its secret file and writes a blob with the SAS URL
from its mounted file, and the ``job.succeeded`` event shows ``***`` for both values and the
``outputs`` listing. Then it stops everything.
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
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
    parser.add_argument(
        "--secrets-to",
        type=Path,
        help="(for tests) write the values this run must never print — the planted Key Vault secret, "
        "the registry's refresh tokens, the SAS signatures — to this JSON file",
    )
    parser.add_argument(
        "--serve", action="store_true", help="after the requests, keep the app (and its status page) up until Ctrl-C"
    )
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
    from devtools.azurite_blob import AzuriteBlob
    from devtools.host import LocalHost
    from devtools.standins.kube.apiserver import KubeStandIn
    from shared.cli.main import encode_for_trigger, format_event, message_encoding

    console = Console(highlight=False, width=200, soft_wrap=True)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    requests: list[dict[str, Any]] = json.loads(Path(args.requests).read_text())

    console.print("[bold]vnode-batch local demo[/] — Azurite + Kubernetes stand-in + the app's functions\n")
    with (
        _starting(AzuriteBlob(REPO)) as data_account,  # for the last step; a node process takes seconds to start
        Azurite(REPO) as azurite,
        KubeStandIn(pod_start_seconds=0.5) as kube,
    ):
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
            console.print(f"  HTTP API         {runner.http_url}/api/requests  (x-functions-key required)")
            # This run's made-up local key, so the page opens as is (docs/operations.md "Status page").
            console.print(f"  status page      {runner.http_url}/api/status?code={runner.function_keys['default']}\n")
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
            if args.serve:
                _serve(console, f"{runner.http_url}/api/status?code={runner.function_keys['default']}")
        left = len(kube.jobs(settings["VNB_NAMESPACE"]))
        private_ok = False
        if terminal >= len(requests):
            _cost_table(settings, console)
            private_ok = _private_image_secret_and_data(
                console, kube, data_account.result(), settings, workdir, args.secrets_to
            )
    console.print()
    if terminal >= len(requests) and not private_ok:
        console.print("[bold red]failed[/]: the request with a private image, a secret file and an output blob")
        return 1
    if terminal >= len(requests):
        console.print(
            f"[bold green]done[/]: {len(requests)} requests, {terminal} terminal events; "
            f"{left} Jobs left (reported Jobs are deleted at once; the ledger remembers their keys)"
        )
        return 0
    console.print(f"[bold red]timed out[/]: {terminal} of {len(requests)} requests have a terminal event")
    return 1


def _serve(console: Console, url: str) -> None:
    """Keep the host up (its timers and HTTP functions run) until Ctrl-C."""
    console.print(f"\n[bold]status page[/]  {url}  (Ctrl-C to go on)")
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(1)


@contextlib.contextmanager
def _starting(server: Any) -> Iterator[Future[Any]]:
    """Start ``server`` in a thread now, its ``start()`` result when it is up; stop it on exit."""
    with ThreadPoolExecutor(1) as pool:
        started = pool.submit(server.start)
        try:
            yield started
        finally:
            with contextlib.suppress(Exception):
                started.result()  # never stop a server half started
            server.stop()


def _private_image_secret_and_data(
    console: Console, kube: Any, blob: Any, settings: dict[str, str], workdir: Path, secrets_to: Path | None
) -> bool:
    """Issue 17 end to end: a private image from a registry, a Key Vault secret as a file and an
    output blob, with the stand-ins the integration tests use (real SDK clients over HTTPS)."""
    import base64
    import secrets
    from urllib.parse import parse_qs, urlsplit

    from azure.core.credentials import AccessToken
    from azure.storage.blob import BlobServiceClient

    from devtools.host import LocalHost
    from devtools.standins.acr.server import AcrStandIn
    from devtools.standins.arm.standin import CREDENTIAL_ENV_CONFLICTS, ArmStandIn
    from devtools.standins.keyvault.server import KeyVaultStandIn
    from devtools.tls import shared_ca
    from shared.cli.api import ApiClient
    from shared.cli.main import format_event

    namespace = settings["VNB_NAMESPACE"]
    planted = "demo-" + secrets.token_hex(12)  # the secret's value: it must show as *** only
    sas_sigs: set[str] = set()
    for name in CREDENTIAL_ENV_CONFLICTS:  # they would turn the worker's credential away from the identity stand-in
        os.environ.pop(name, None)
    console.print(
        "\n[bold]Private image, secret file and output blob[/] — registry, Key Vault and data account are "
        "HTTPS stand-ins; the app reaches them with its managed identity"
    )
    with (
        ArmStandIn() as arm,
        AcrStandIn(validate_token=arm.validate_token, tenant=arm.tenant_id, pullers={arm.app_principal_id}) as acr,
        KeyVaultStandIn(validate_token=arm.validate_token, readers={arm.app_principal_id}) as vault,
    ):
        with kube.cluster.lock:
            kube.aci.registries[acr.server] = acr.check_pull  # ACI pulls from it only with a credential it accepts
        vault.set_secret("db-password", planted)

        class _AppToken:  # the app identity's storage token, to create the results container
            def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
                token = arm.issue_token(arm.app_principal_id, "https://storage.azure.com")
                return AccessToken(token, int(time.time()) + 3600)

        BlobServiceClient(
            blob.account_url, credential=_AppToken(), connection_verify=str(shared_ca().ca_path)
        ).create_container("results")
        extra = {
            "VNB_ACR_REGISTRIES": acr.server,
            "VNB_KEY_VAULT_URL": vault.url,
            "VNB_DATA_ACCOUNT_URL": blob.account_url,
        }
        for key, value in extra.items():
            console.print(f"  {key:<22} {value}")
        body: dict[str, Any] = {
            "id": "score-1",
            "image": f"{acr.server}/batch/scoring:4",
            "command": [
                "sh",
                "-c",
                "echo DB_PASSWORD:; cat /var/run/secrets/vnode-batch/DB_PASSWORD; "
                "upload-blob /var/run/secrets/vnode-batch/VNB_OUTPUT_URL ${VNB_OUTPUT_PREFIX}scores.csv id,score; "
                "echo wrote ${VNB_OUTPUT_PREFIX}scores.csv with VNB_OUTPUT_URL:; cat /var/run/secrets/vnode-batch/VNB_OUTPUT_URL",
            ],
            "secrets": {"DB_PASSWORD": "db-password"},
            "output": {"container": "results", "prefix": "score-1/"},
            "labels": {"team": "demo"},
        }
        runner = LocalHost(
            REPO,
            settings={**settings, **arm.credential_env(), **extra},
            host_json=REPO / "host.json",
            state_dir=workdir / "timers-private",
            http_port=0,
        )
        with runner:
            api = ApiClient(base_url=runner.http_url, function_key=runner.function_keys["default"])
            status, _, headers = api.call("POST", "/api/requests", body=json.dumps(body).encode())
            console.print(
                f"[cyan]POST {runner.http_url}/api/requests[/]  {status}  Location: {headers.get('Location')}"
            )
            console.print(json.dumps(body, indent=2), markup=False)
            events_q = _queue(settings, "VNB_EVENTS_QUEUE")
            seen: dict[str, str] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for secret in kube.secrets(namespace):  # the SAS the container gets, to check it is never printed
                    url = (secret.get("data") or {}).get("VNB_OUTPUT_URL")
                    if url:
                        sas_sigs.update(parse_qs(urlsplit(base64.b64decode(url).decode()).query).get("sig", []))
                for job in kube.jobs(namespace):
                    name, state = job["metadata"]["name"], _job_state(job, kube)
                    if seen.get(name) != state:
                        seen[name] = state
                        console.print(f"[magenta]job[/]        {name}  {state}")
                for message in events_q.receive_messages(max_messages=32, visibility_timeout=30):
                    events_q.delete_message(message)
                    event = json.loads(str(message.content))
                    data = event.get("data") or {}
                    kind = str(event.get("type", "")).removeprefix("io.vnodebatch.")
                    console.print(
                        f"[{'green' if kind == 'job.succeeded' else 'yellow'}]event[/]      {format_event(event)}"
                    )
                    if data.get("requestKey") == "score-1" and kind in TERMINAL:
                        for tail in data.get("logTail") or []:
                            console.print(f"  logTail  {tail.get('pod')}/{tail.get('container')}:")
                            for line in str(tail.get("text", "")).splitlines():
                                console.print(f"    {line}", markup=False)
                        console.print(f"  outputs  {json.dumps(data.get('outputs'))}", markup=False)
                        _write_secrets(secrets_to, planted, acr.counters.issued, sas_sigs)
                        return kind == "job.succeeded"
                time.sleep(0.1)
        _write_secrets(secrets_to, planted, acr.counters.issued, sas_sigs)
    console.print("[bold red]timed out[/] waiting for the event of score-1")
    return False


def _write_secrets(path: Path | None, planted: str, tokens: list[str], sigs: set[str]) -> None:
    if path is not None:
        path.write_text(json.dumps({"planted": planted, "refreshTokens": tokens, "sasSignatures": sorted(sigs)}))


def _queue(settings: dict[str, str], name: str) -> Any:
    from azure.storage.queue import QueueClient

    return QueueClient.from_connection_string(settings["AzureWebJobsStorage"], settings[name])


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
