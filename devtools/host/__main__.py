"""``python -m devtools.host``: run a Functions app directory locally, like ``func start``.

Settings come from ``local.settings.json`` ``Values`` (the environment wins, as in Core Tools,
which warns "Skipping '<name>' from local settings as it's already defined in current
environment variables"), host.json from the app directory. HTTP functions are served on
``http://127.0.0.1:<port>/api/...``; the function key to call ``authLevel: function``
endpoints is printed at start-up (or fixed with ``--function-key`` / ``VNB_LOCAL_FUNCTION_KEY``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devtools.host.host import LocalHost
from devtools.host.settings import HostError, load_local_settings

log = logging.getLogger("devtools.host")


def cli_settings(path: Path) -> dict[str, str]:
    """App settings as Core Tools sees them: the environment wins over local.settings.json."""
    try:
        local = load_local_settings(path)
    except HostError:
        if path.exists():
            raise
        log.warning("%s not found: using environment variables only", path)
        local = {}
    settings: dict[str, str] = {}
    for key, value in local.items():
        if key in os.environ and os.environ[key] != value:
            log.warning("Skipping '%s' from local settings as it's already defined in current environment "
                        "variables.", key)
        else:
            settings[key] = value
    return settings


def main(argv: list[str] | None = None, prog: str = "python -m devtools.host") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Run the Functions app locally on the real "
                                     "Python worker runtime against Azurite (a stand-in for `func start`).")
    parser.add_argument("--app-dir", default=".", type=Path, help="the app directory (function_app.py)")
    parser.add_argument("--settings", default=None, type=Path,
                        help="Core Tools settings file (default: <app-dir>/local.settings.json)")
    parser.add_argument("--host-json", default=None, type=Path, help="host.json (default: <app-dir>/host.json)")
    parser.add_argument("--port", default=7071, type=int, help="HTTP port on 127.0.0.1 (default: 7071)")
    parser.add_argument("--function-key", default=os.environ.get("VNB_LOCAL_FUNCTION_KEY"),
                        help="the function key HTTP callers must send (default: generated)")
    parser.add_argument("--stop-timeout", default=30.0, type=float,
                        help="seconds to wait for running invocations on Ctrl-C (default: 30)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # azure-core logs every request at INFO
    app_dir = args.app_dir.resolve()
    try:
        settings = cli_settings(args.settings or app_dir / "local.settings.json")
        host = LocalHost(app_dir, settings=settings, host_json=args.host_json or app_dir / "host.json",
                         http_port=args.port, function_keys={"default": args.function_key} if args.function_key else None)
        print("\nFunctions:\n")
        for line in host.describe():
            print(f"\t{line}")
        print(f"\nQueues: {host.queues_options.describe()}\n", flush=True)
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if stop.is_set():
                raise KeyboardInterrupt  # second Ctrl-C: stop waiting
            stop.set()

        # Installed explicitly: a process started in the background by a non-interactive shell
        # inherits SIGINT as ignored, so Ctrl-C (or a test's SIGINT) would otherwise be lost.
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        host.start()
        if host.http is not None:
            print(f"HTTP functions on {host.http.url}/api/ ; function key (x-functions-key or ?code=): "
                  f"{host.function_keys['default']}", flush=True)
        # Never an untimed stop.wait(): a Ctrl-C or kill "may be delivered to any one of the threads
        # that does not currently have the signal blocked" (signal(7)), and CPython runs on_signal
        # only when the main thread next runs bytecode ("Signals and threads",
        # docs.python.org/3/library/signal.html); a main thread parked in an untimed lock wait
        # is woken only by a signal that lands on it, so one landing on a listener thread was lost
        # (tests/host/test_cli.py sends one there). A timed wait returns to the interpreter.
        while not stop.wait(0.25):
            pass
        log.info("Stopping (waiting up to %gs for running invocations)...", args.stop_timeout)
        try:
            host.stop(timeout=args.stop_timeout)
        except KeyboardInterrupt:
            log.warning("Forced stop: running invocations were abandoned")
            return 130
        log.info("Local host stopped")
    except HostError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
