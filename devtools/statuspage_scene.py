"""A few requests in every kind of state, for the status page's browser tests and screenshot.

Two teams (a teams file with one function key each, and an operator key that sees both) on a
capacity budget of two container groups: one request succeeded and one failed (each with its
cost), one running per team, and a third of team b waiting for capacity with its position. All
through the requests API of a running local host, as a user would submit them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from shared.teams.model import key_digest

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"
KEYS = {"team-a": "status-page-key-team-a-01234", "team-b": "status-page-key-team-b-01234", "ops": "status-page-key-ops-0123456"}
LONG = ["sh", "-c", "echo working; sleep 900"]


def scene_settings(workdir: Path) -> dict[str, str]:
    """App settings for the scene: the teams file (written to ``workdir``) and a small budget."""
    def team(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "members": {"functionKeys": [key_digest(KEYS[name])]},
            "nominal": {"cores": 1, "containerGroups": 1},
            "borrowingLimit": {"cores": 1, "containerGroups": 1},
            "registries": ["mcr.microsoft.com"],
        }

    path = workdir / "teams.json"
    body = {"version": 1, "teams": [team("team-a"), team("team-b")], "operators": {"functionKeys": [key_digest(KEYS["ops"])]}}
    path.write_text(json.dumps(body))
    return {
        "VNB_TEAMS_FILE": str(path),
        "VNB_CAPACITY_CONTAINER_GROUPS": "2",
        "VNB_CAPACITY_CORES": "4",
        "VNB_CAPACITY_CACHE_SECONDS": "0.2",
        "VNB_CAPACITY_DEFER_SECONDS": "1",
        "VNB_KEEP_FINISHED_SECONDS": "0",
    }


def wait_until(check: Callable[[], bool], *, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.3)


class Scene:
    """The requests API of ``url`` as the scene's callers (``KEYS``) use it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def submit(self, who: str, body: dict[str, Any]) -> None:
        r = requests.post(f"{self.url}/api/requests", json={"image": IMAGE, **body},
                          headers={"x-functions-key": KEYS[who]}, timeout=30)
        r.raise_for_status()

    def get(self, key: str) -> dict[str, Any]:
        r = requests.get(f"{self.url}/api/requests/{key}", headers={"x-functions-key": KEYS["ops"]}, timeout=30)
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    def state(self, key: str) -> str:
        return str(self.get(key)["state"])

    def populate(self) -> None:
        """Finished requests first (their Jobs free the budget), then two runners and one waiter."""
        self.submit("team-a", {"id": "nightly-report", "command": ["sh", "-c", "echo report; sleep 1"], "cpu": "1"})
        self.submit("team-b", {"id": "etl-load", "command": ["sh", "-c", "echo loading; sleep 1; exit 3"], "cpu": "1"})
        wait_until(lambda: self.state("nightly-report") == "succeeded" and self.state("etl-load") == "failed",
                   what="the short requests to finish")
        self.submit("team-a", {"id": "train-model", "command": LONG, "cpu": "1"})
        self.submit("team-b", {"id": "render-frames", "command": LONG, "cpu": "1"})
        wait_until(lambda: self.state("train-model") == "running" and self.state("render-frames") == "running",
                   what="two requests to run")
        self.submit("team-b", {"id": "render-more", "command": LONG, "cpu": "1"})
        wait_until(lambda: bool(self.get("render-more").get("queue", {}).get("position")),
                   what="render-more to wait for capacity with its position")
