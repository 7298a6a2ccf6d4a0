"""checkov on infra/: no failed check unless the Bicep skips it inline with a stated reason.

checkov pins many packages that clash with the app's, so it lives in its own venv
(.venv-checkov, installed by scripts/setup from requirements-checkov.txt). A missing checkov is a
failure, never a skip: a clean CI machine must install it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep_model import INFRA, REPO, bicep_files

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
INSTALL_HINT = "run .ci/run (or: python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov==3.3.30)"
# `//checkov:skip=CKV_AZURE_35: reason` inside the resource it applies to.
_SKIP = re.compile(r"//\s*checkov:skip=(?P<id>CKV2?_[A-Z]+_\d+)(?::(?P<reason>.*))?$")
_MIN_REASON = 40


@cache
def checkov_report() -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV.relative_to(REPO)}: {INSTALL_HINT}")
    env = dict(os.environ, CKV_NO_FAIL_ON_CRASH="false")
    # Not --quiet: the skipped checks are needed to spot stale skip comments. --skip-download:
    # no calls to the Prisma Cloud API (offline CI; it only adds guideline links).
    command = [str(CHECKOV), "-d", str(INFRA), "--framework", "bicep", "-o", "json", "--skip-download"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240, env=env, check=False)
    if proc.returncode not in (0, 1):  # 1 = failed checks; anything else is checkov itself failing
        pytest.fail(f"checkov exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    [bicep] = [r for r in reports if r.get("check_type") == "bicep"]
    result: dict[str, Any] = bicep
    return result


def _relative(file_path: str) -> str:
    return (INFRA / file_path.lstrip("/")).relative_to(REPO).as_posix()


def skip_comments() -> list[tuple[Path, int, str, str]]:
    found = []
    for path in bicep_files():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = _SKIP.search(line.strip())
            if match:
                found.append((path, number, match["id"], (match["reason"] or "").strip()))
    return found


def test_checkov_scanned_every_resource_without_parse_errors() -> None:
    summary = checkov_report()["summary"]
    assert summary["parsing_errors"] == 0, f"checkov could not parse some Bicep: {summary}"
    assert summary["resource_count"] > 0
    assert summary["passed"] > 0


def test_no_unjustified_failed_check() -> None:
    failed = checkov_report()["results"].get("failed_checks", [])
    problems = [f"{_relative(c['file_path'])} {c['resource']}: {c['check_id']} {c['check_name']}" for c in failed]
    assert not problems, (
        "checkov failed checks; fix the Bicep or, when the check does not fit this app, add "
        "`//checkov:skip=<ID>: <why>` as the first line inside the resource:\n  " + "\n  ".join(problems)
    )


def test_every_skip_states_a_reason() -> None:
    thin = [
        f"{path.relative_to(REPO)}:{line} {check}"
        for path, line, check, reason in skip_comments()
        if len(reason) < _MIN_REASON
    ]
    assert not thin, f"skip comments need a real justification (at least {_MIN_REASON} characters): {thin}"


def test_no_stale_skip() -> None:
    """Every skip comment suppresses a check checkov actually runs against that file."""
    skipped = {
        (_relative(c["file_path"]), c["check_id"]) for c in checkov_report()["results"].get("skipped_checks", [])
    }
    stale = [
        f"{path.relative_to(REPO)}:{line} {check}"
        for path, line, check, _ in skip_comments()
        if (path.relative_to(REPO).as_posix(), check) not in skipped
    ]
    assert not stale, f"skip comments for checks checkov does not report here (remove them): {stale}"
