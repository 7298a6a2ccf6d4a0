"""The CLI as an operator uses it: exit codes, stdout/stderr, no cluster needed for render."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate

from tests.conftest import BASE_ENV, REPO


def cli(
    *args: str, stdin: str | None = None, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **BASE_ENV, **(env or {})},
        check=False,
    )


def test_render_prints_a_valid_manifest() -> None:
    out = cli("render", "-", stdin=json.dumps({"id": "r-1", "image": "busybox", "command": ["sh", "-c", "true"]}))
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout)
    assert manifest["kind"] == "Job"
    assert manifest["spec"]["template"]["spec"]["nodeSelector"]["type"] == "virtual-kubelet"
    kubernetes_validate.validate(manifest, "1.33", strict=True)


def test_render_says_which_resources_were_applied() -> None:
    body = {"id": "r-2", "image": "busybox", "command": ["true"], "cpu": "125m", "memory": "1.5Gi"}
    out = cli("render", "-", stdin=json.dumps(body))
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout)
    assert manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "130m",
        "memory": "1700M",
    }
    assert "applied cpu: 130m (requested 125m; ACI takes vCPU in steps of 10m, rounded up)" in out.stderr
    assert (
        "applied memory: 1700M (requested 1.5Gi; ACI takes memory in 0.1 GB (decimal) steps, rounded up)" in out.stderr
    )


def test_render_rejects_with_field_errors_and_exit_2() -> None:
    out = cli("render", "-", stdin=json.dumps({"image": "busybox", "cpu": 99, "oops": 1}))
    assert out.returncode == 2
    assert out.stdout == ""
    assert "cpu:" in out.stderr
    assert "oops: unknown field" in out.stderr


def test_submit_refuses_invalid_requests_before_touching_the_queue(tmp_path: Path) -> None:
    body = tmp_path / "bad.json"
    body.write_text(json.dumps([{"image": "busybox"}, {"image": "evil.example.com/x"}]))
    # The storage connection points nowhere: validation must fail first, with exit 2.
    out = cli(
        "submit",
        str(body),
        env={
            "AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=x;AccountKey=eA==;QueueEndpoint=http://127.0.0.1:9/x;"
        },
    )
    assert out.returncode == 2
    assert "request 1:" in out.stderr
    assert "is not allowed" in out.stderr
    assert "nothing sent" in out.stderr


def test_schedules_lists_batches_and_validates_the_file(tmp_path: Path) -> None:
    out = cli("schedules", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows
    assert {"name", "cron", "timeZone", "nextRun"} <= set(rows[0])

    bad = tmp_path / "schedules.json"
    bad.write_text(
        json.dumps(
            {
                "version": 1,
                "schedules": [{"name": "x", "cron": "61 * * * *", "timeZone": "Mars/Olympus", "request": {}}],
            }
        )
    )
    out = cli("schedules", env={"VNB_SCHEDULES_FILE": str(bad)})
    assert out.returncode == 2
    assert "x" in out.stderr


def test_bad_settings_exit_1_naming_the_setting() -> None:
    out = cli("render", "-", stdin="{}", env={"VNB_MAX_CPU": "lots"})
    assert out.returncode == 1
    assert "VNB_MAX_CPU" in out.stderr


def test_schedules_refuses_a_cron_that_can_never_fire_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "schedules.json"
    good = {"name": "nightly", "cron": "0 2 * * *", "request": {"image": "busybox"}}
    never = {"name": "feb-31", "cron": "0 0 31 2 *", "request": {"image": "busybox"}}
    path.write_text(json.dumps({"version": 1, "schedules": [good, never]}))
    out = cli("schedules", env={"VNB_SCHEDULES_FILE": str(path)})
    assert out.returncode == 2
    assert "schedules[1] (feb-31).cron: '0 0 31 2 *' never fires" in out.stderr
    assert "Traceback" not in out.stderr
