"""The README's demo (`scripts/demo`) as a fresh user runs it: it ends well and leaves nothing in /tmp."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_the_demo_finishes_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VNB_", "AzureWebJobs"))}
    out = subprocess.run(
        [sys.executable, "-m", "devtools.demo", "--timeout", "120"],
        cwd=REPO, env={**env, "TMPDIR": str(scratch)}, capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "done: 4 requests, 4 terminal events" in out.stdout
    assert sorted(p.name for p in scratch.iterdir()) == []  # a vnb-demo-* directory per run used to stay
