"""What a deployment ships: the app and its runtime files, none of the dev tools."""

from __future__ import annotations

import fnmatch

from tests.conftest import REPO

NEEDED = ["function_app.py", "host.json", "requirements.txt", "schedules.json", "functions/dispatch.py", "shared/config/settings.py",
          # the status page's files are read at run time, not imported
          "shared/statuspage/assets/index.html", "shared/statuspage/assets/app.js", "shared/statuspage/assets/style.css"]
LEFT_OUT = [".venv/bin/python", "node_modules/azurite/package.json", "tests/conftest.py", "devtools/runner.py", "devtools/host/host.py", "local.settings.json"]


def ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    return any(fnmatch.fnmatch(part, pattern) for pattern in patterns for part in parts) or any(
        fnmatch.fnmatch(path, pattern) for pattern in patterns
    )


def test_funcignore_ships_the_app_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".funcignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert [p for p in NEEDED if ignored(p, patterns)] == []
    assert [p for p in LEFT_OUT if not ignored(p, patterns)] == []
