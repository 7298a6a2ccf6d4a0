"""The README's Core Tools walk-through commands work as written (against Azurite)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid

import pytest
from azure.storage.queue import QueueClient

from devtools.azurite import Azurite
from tests.conftest import BASE_ENV, REPO

pytestmark = pytest.mark.integration


def test_the_readme_submit_step_sends_every_sample_request(azurite: Azurite) -> None:
    section = (REPO / "README.md").read_text().split("## Run locally with Azure Functions Core Tools", 1)[1]
    [command] = re.findall(r"`(python -m shared\.cli submit [^`]*)`", section.split("\n## ", 1)[0])
    queue = "readme-" + uuid.uuid4().hex[:8]
    env = {**os.environ, **BASE_ENV, "AzureWebJobsStorage": azurite.connection_string, "VNB_REQUESTS_QUEUE": queue}
    args = shlex.split(command)
    out = subprocess.run(
        [sys.executable, *args[1:]], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    samples = json.loads((REPO / "samples" / "requests.json").read_text())
    assert out.stdout.count(f"on {queue}") == len(samples)
    sent = QueueClient.from_connection_string(azurite.connection_string, queue).peek_messages(max_messages=32)
    assert len(sent) == len(samples)
