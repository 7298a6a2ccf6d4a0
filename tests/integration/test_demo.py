"""The README's demo (`scripts/demo`) as a fresh user runs it: it ends well, leaves nothing in /tmp,
and its private-image / secret-file / output-blob request prints no secret value."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_the_demo_finishes_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    secrets_file = tmp_path / "secrets.json"  # the values the demo planted or was issued, to look for
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VNB_", "AzureWebJobs"))}
    out = subprocess.run(
        [sys.executable, "-m", "devtools.demo", "--timeout", "120", "--secrets-to", str(secrets_file)],
        cwd=REPO, env={**env, "TMPDIR": str(scratch)}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "done: 4 requests, 4 terminal events" in out.stdout
    # The status page's URL, with this run's key, is printed for the user to open.
    assert re.search(r"status page +http://127\.0\.0\.1:\d+/api/status\?code=\S+", out.stdout)
    assert sorted(p.name for p in scratch.iterdir()) == []  # a vnb-demo-* directory per run used to stay
    # Issue 17: a private image, a secret file and an output blob the container wrote with its SAS.
    assert "job.succeeded         key=score-1" in out.stdout
    assert '"names": ["score-1/scores.csv"]' in out.stdout
    assert "DB_PASSWORD:\n    ***\n" in out.stdout
    assert "with VNB_OUTPUT_URL:\n    ***\n" in out.stdout
    planted = json.loads(secrets_file.read_text())
    assert planted["planted"]
    assert planted["refreshTokens"]
    assert planted["sasSignatures"]
    printed = out.stdout + out.stderr
    assert planted["planted"] not in printed
    for token in planted["refreshTokens"]:
        assert token not in printed
        assert token[-40:] not in printed  # not even its signature
    for sig in planted["sasSignatures"]:
        assert sig not in printed
        assert quote(sig, safe="") not in printed  # as it stands in a URL
