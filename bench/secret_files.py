"""Added dispatch latency and calls per request for secret files (issue 17).

For each request with ``secrets`` the dispatcher reads every named secret from Key Vault (real
azure-keyvault-secrets client, managed identity from the ARM stand-in's token endpoint, HTTPS Key
Vault stand-in), creates the per-request Secret, creates the Job, then makes the Job the Secret's
owner (GET Job + PATCH Secret). This script times those steps in-process against the stand-ins
over real sockets, and counts the calls each request makes.

    .venv/bin/python bench/secret_files.py [requests] [secrets per request]

Then the same for a private ACR image and blob input/output (``workload_access.prepare``): the
pull Secret check (a GET while fresh; the token exchange + a create when missing or stale, once per
registry per 2 hours) and two user delegation SAS URLs (Azurite's blob service over HTTPS with
``--oauth basic``; the delegation key is fetched once and reused until a SAS would outlive it).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devtools.azurite_blob import AzuriteBlob  # noqa: E402
from devtools.standins.acr.server import AcrStandIn  # noqa: E402
from devtools.standins.arm.standin import CREDENTIAL_ENV_CONFLICTS, ArmStandIn  # noqa: E402
from devtools.standins.keyvault.server import KeyVaultStandIn  # noqa: E402
from devtools.standins.kube.apiserver import KubeStandIn  # noqa: E402
from shared.adapters.acr import TokenExchange  # noqa: E402
from shared.adapters.blobs import DataAccount  # noqa: E402
from shared.adapters.keyvault import VaultReader  # noqa: E402
from shared.adapters.kube import Cluster, from_kubeconfig_dict  # noqa: E402
from shared.config.settings import Settings  # noqa: E402
from shared.flows import secret_files, workload_access  # noqa: E402
from shared.intake.request import parse_request  # noqa: E402
from shared.job.render import JobMeta, build_job  # noqa: E402
from tests.conftest import BASE_ENV  # noqa: E402


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[max(0, int(len(values) * 0.95) - 1)]
    return f"median {statistics.median(values) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"


def main(n: int = 50, per_request: int = 2) -> None:
    with ArmStandIn() as arm, KubeStandIn(pod_start_seconds=0.02) as kube:
        for name in CREDENTIAL_ENV_CONFLICTS:
            os.environ.pop(name, None)
        os.environ.update(arm.credential_env())
        with KeyVaultStandIn(validate_token=arm.validate_token, readers={arm.app_principal_id}) as kv:
            for i in range(per_request):
                kv.set_secret(f"s{i}", f"value-{i}")
            settings = Settings.from_env({**BASE_ENV, "VNB_KEY_VAULT_URL": kv.url})
            cluster = Cluster(from_kubeconfig_dict(kube.kubeconfig_dict(), context=None, timeout=5), "vnode-batch")
            reader = VaultReader(kv.url)
            reader.read("s0")  # first token + challenge: a once-per-process cost, reported apart
            t_read, t_stage, t_create, t_adopt = [], [], [], []
            calls_before = len(kube.request_log)
            reads_before = kv.counters.reads
            for r in range(n):
                body = {
                    "id": f"bench-{r}",
                    "image": "mcr.microsoft.com/azurelinux/base/core:3.0",
                    "secrets": {f"F{i}": f"s{i}" for i in range(per_request)},
                }
                request = parse_request(body, settings=settings)
                manifest = build_job(request, JobMeta(f"bench-{r}", f"m{r}", None), settings=settings)
                t0 = time.perf_counter()
                values = secret_files.read_values(request, settings, vault=lambda _url: reader)
                t1 = time.perf_counter()
                assert isinstance(values, dict)
                secret_files.stage(cluster, manifest, values)
                t2 = time.perf_counter()
                cluster.create_job(manifest)
                t3 = time.perf_counter()
                secret_files.adopt(cluster, manifest)
                t4 = time.perf_counter()
                t_read.append(t1 - t0)
                t_stage.append(t2 - t1)
                t_create.append(t3 - t2)
                t_adopt.append(t4 - t3)
            kube_calls = (len(kube.request_log) - calls_before) / n
            kv_reads = (kv.counters.reads - reads_before) / n
            added = [a + b + c for a, b, c in zip(t_read, t_stage, t_adopt, strict=True)]
            print(f"{n} requests, {per_request} secrets each (stand-ins over HTTPS on loopback)")
            print(f"  Key Vault reads:         {_ms(t_read)}  ({kv_reads:.1f} GET per request)")
            print(f"  Secret create:           {_ms(t_stage)}")
            print(f"  Job create (baseline):   {_ms(t_create)}")
            print(f"  owner (GET Job + PATCH): {_ms(t_adopt)}")
            print(f"  added per request:       {_ms(added)}")
            print(f"  Kubernetes calls per request: {kube_calls:.1f} (1 without secrets: the Job create)")


def acr_and_sas(n: int = 50) -> None:
    """Added dispatch latency of a private ACR image with blob input and output."""
    from datetime import UTC, datetime

    from shared.secrets import pull

    with ArmStandIn() as arm, KubeStandIn(pod_start_seconds=0.02) as kube, AzuriteBlob(REPO) as blob:
        for name in CREDENTIAL_ENV_CONFLICTS:
            os.environ.pop(name, None)
        os.environ.update(arm.credential_env())
        with AcrStandIn(validate_token=arm.validate_token, tenant=arm.tenant_id, pullers={arm.app_principal_id}) as acr:
            env = {**BASE_ENV, "VNB_ACR_REGISTRIES": acr.server, "VNB_DATA_ACCOUNT_URL": blob.account_url}
            settings = Settings.from_env(env)
            cluster = Cluster(from_kubeconfig_dict(kube.kubeconfig_dict(), context=None, timeout=5), "vnode-batch")
            tokens, account = TokenExchange(), DataAccount(blob.account_url)

            def prepare(r: int) -> float:
                body = {
                    "id": f"bench-acr-{r}",
                    "image": f"{acr.server}/batch/worker:1",
                    "input": {"container": "inputs", "prefix": "in/"},
                    "output": {"container": "results", "prefix": f"out/{r}/"},
                }
                request = parse_request(body, settings=settings)
                manifest = build_job(request, JobMeta(f"bench-acr-{r}", f"m{r}", None), settings=settings)
                t0 = time.perf_counter()
                ready = workload_access.prepare(
                    request,
                    manifest,
                    settings=settings,
                    cluster=cluster,
                    now=datetime.now(UTC),
                    tokens=lambda _server: tokens,
                    data=lambda _url: account,
                )
                assert isinstance(ready, workload_access.Prepared)
                return time.perf_counter() - t0

            first = prepare(-1)  # first token, exchange, Secret create, delegation key
            calls_before, exchanges_before = len(kube.request_log), acr.counters.exchanges
            steady = [prepare(r) for r in range(n)]
            kube_calls = (len(kube.request_log) - calls_before) / n
            cluster.delete_secret(pull.secret_name(acr.server))
            t0 = time.perf_counter()
            workload_access.ensure_pull_secret(
                cluster, acr.server, settings=settings, now=datetime.now(UTC), tokens=tokens
            )
            renew = time.perf_counter() - t0
            print(f"{n} requests with a private ACR image, blob input and output (HTTPS stand-ins, Azurite)")
            print(f"  first request (token, exchange, Secret, delegation key): {first * 1000:.1f} ms")
            print(f"  steady state (pull Secret GET + 2 SAS):                  {_ms(steady)}")
            print(f"  renewal (exchange + Secret create):                       {renew * 1000:.1f} ms")
            print(
                f"  per request: {kube_calls:.1f} Kubernetes call(s), "
                f"{(acr.counters.exchanges - exchanges_before) / n:.1f} exchanges, "
                f"{account.key_requests} delegation key request(s) in all"
            )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
    acr_and_sas(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
