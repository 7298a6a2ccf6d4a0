"""What the status page costs: its weight, and the API calls and their time per refresh.

Runs the app on the local host with the requests of ``devtools/statuspage_scene.py`` (Azurite,
the Kubernetes stand-in, the real worker runtime), opens the page in headless Chromium (Debian's
``/usr/bin/chromium`` via Playwright) as an operator for ``--seconds`` seconds, and prints: each
asset's size (raw and gzip), the API calls one refresh makes, and the server time of those calls
(Playwright's request timing: request start to response end, over loopback).

    .venv/bin/python -m bench.status_page --seconds 30
"""

from __future__ import annotations

import argparse
import collections
import gzip
import statistics
import tempfile
import time
from urllib.parse import urlsplit

from devtools.statuspage_scene import KEYS
from devtools.statuspage_shot import CHROMIUM_ARGS, running_scene
from shared.statuspage.assets import ASSETS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    total = zipped = 0
    for path in sorted(ASSETS.iterdir()):
        raw = path.read_bytes()
        total, zipped = total + len(raw), zipped + len(gzip.compress(raw))
        print(f"asset {path.name:<14} {len(raw):>6} B  gzip {len(gzip.compress(raw)):>5} B")
    print(f"assets total       {total:>6} B  gzip {zipped:>5} B")
    with running_scene() as base, tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        page = context.new_page()
        calls: dict[str, list[float]] = collections.defaultdict(list)

        def finished(request: object) -> None:
            timing = request.timing  # type: ignore[attr-defined]
            path = urlsplit(request.url).path  # type: ignore[attr-defined]
            if "/assets/" not in path and path.rstrip("/") != "/api/status":
                name = "/api/requests/{id}" if path.startswith("/api/requests/") else path
                calls[name].append(timing["responseEnd"])

        page.on("requestfinished", finished)
        page.goto(f"{base}/api/status?code={KEYS['ops']}#id=render-more")
        page.locator("#detail").get_by_text("Position 1").wait_for()
        calls.clear()
        started = time.monotonic()
        page.wait_for_timeout(args.seconds * 1000)
        elapsed = time.monotonic() - started
        refreshes = max(len(v) for v in calls.values()) if calls else 0
        print(f"page open {elapsed:.0f} s: {refreshes} refreshes (every 5 s while visible)")
        for name, times in sorted(calls.items()):
            print(f"  {name:<22} {len(times) / max(refreshes, 1):.1f} call(s)/refresh  "
                  f"median {statistics.median(times):.1f} ms  max {max(times):.1f} ms")
        context.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
