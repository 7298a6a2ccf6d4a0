"""The CLI as an operator uses it: exit codes, stdout/stderr, no cluster needed for render."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import kubernetes_validate

from devtools.azurite import DEV_ACCOUNT_KEY
from tests.conftest import BASE_ENV, REPO


def cli(
    *args: str, stdin: str | None = None, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli.main", *args],
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


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_render_of_a_missing_file_is_one_line_naming_it() -> None:
    out = cli("render", "/nonexistent.json")
    assert out.returncode == 2
    line = one_error_line(out)
    assert "cannot read /nonexistent.json: No such file or directory" in line
    assert "or - for stdin" in line


def test_submit_of_a_non_utf8_file_is_one_line_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.json"
    bad.write_bytes('{"image": "busybox", "env": {"NAME": "Ren\u00e9"}}'.encode("latin-1"))
    out = cli("submit", str(bad))
    assert out.returncode == 2
    assert f"{bad} is not UTF-8 text (byte 41): save it as UTF-8" in one_error_line(out)


def test_a_truncated_json_file_is_one_line_naming_it(tmp_path: Path) -> None:
    obj, array = tmp_path / "obj.json", tmp_path / "array.json"
    obj.write_text('{"image": "busybox", "comm')
    array.write_text('[{"image": "busybox"}, {"ima')
    for command, path in (("render", obj), ("submit", obj), ("submit", array)):
        out = cli(command, str(path))
        assert out.returncode == 2, (command, path)
        line = one_error_line(out)
        assert str(path) in line
        assert "Unterminated string starting at: line 1 column" in line
        assert "fix the file" in line


def test_settings_pointing_at_broken_json_is_one_line_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "local.settings.json"
    broken.write_text('{"Values": {')
    out = cli("--settings", str(broken), "render", "-", stdin=json.dumps({"image": "busybox"}))
    assert out.returncode == 2
    assert f"settings file {broken} is not valid JSON (Expecting property name" in one_error_line(out)
    out = cli("--settings", str(tmp_path / "missing.json"), "render", "-", stdin="{}")
    assert out.returncode == 2
    assert "not found: give the path of a local.settings.json" in one_error_line(out)


def test_submit_with_the_queue_service_unreachable_is_one_line_naming_the_endpoint(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    request = tmp_path / "ok.json"
    request.write_text(json.dumps({"image": "mcr.microsoft.com/azurelinux/base/core:3.0"}))
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_ACCOUNT_KEY};"
        f"QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    out = cli("submit", str(request), env={"AzureWebJobsStorage": connection})
    assert out.returncode == 1
    line = one_error_line(out)
    assert f"cannot reach the queue service at http://127.0.0.1:{port}/devstoreaccount1" in line
    assert "Start Azurite" in line
