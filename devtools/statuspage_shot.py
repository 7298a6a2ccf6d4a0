"""The README's screenshot of the status page (``scripts/status-screenshot``), made reproducibly.

Starts Azurite, the Kubernetes stand-in and the local host with the app (as ``./scripts/demo``
does), puts the requests of ``devtools/statuspage_scene.py`` through the API, opens the page in
headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) as an operator, opens
the waiting request's timeline, and writes a PNG (default ``docs/img/status.png``). With
``--serve`` it then keeps serving and prints the page's URL until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from devtools.azurite import Azurite
from devtools.demo import REPO, demo_settings
from devtools.host import LocalHost
from devtools.standins.kube.apiserver import KubeStandIn
from devtools.statuspage_scene import KEYS, Scene, scene_settings

# Playwright's own browser downloads are never used (no `playwright install`): Debian's chromium,
# which scripts/setup installs, with what a headless test browser needs and nothing that calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def shoot(url: str, out: Path, *, chromium: str, width: int, height: int) -> list[str]:
    """A PNG of the page at ``url`` (full page); the browser's console errors."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vnb-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height}, locale="en-GB", timezone_id="UTC")
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        page.wait_for_function("document.querySelectorAll('#requests tbody a[data-key]').length >= 5")
        page.locator('#requests a[data-key="render-more"]').click()
        page.locator("#detail").get_by_text("Position 1").wait_for()
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        context.close()
    return errors


@contextlib.contextmanager
def running_scene() -> Iterator[str]:
    """Azurite, the stand-in and the local host with the scene's requests; the host's URL."""
    with tempfile.TemporaryDirectory(prefix="vnb-status-") as tmp, Azurite(REPO) as azurite, \
            KubeStandIn(pod_start_seconds=0.5) as kube:
        work = Path(tmp)
        settings = {**demo_settings(azurite.connection_string, kube.write_kubeconfig(work / "kubeconfig")),
                    **scene_settings(work)}
        with LocalHost(REPO, settings=settings, host_json=REPO / "host.json", state_dir=work / "timers") as host:
            host.function_keys.update(KEYS)
            Scene(host.http_url).populate()
            yield host.http_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "status.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--serve", action="store_true", help="keep serving the page after the screenshot")
    args = parser.parse_args(argv)
    with running_scene() as base:
        url = f"{base}/api/status?code={KEYS['ops']}"
        errors = shoot(url, args.out, chromium=args.chromium, width=args.width, height=args.height)
        print(f"wrote {args.out}")
        for error in errors:
            print(f"browser console error: {error}")
        if args.serve:
            print(f"status page: {url}  (Ctrl-C to stop)")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
        return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
