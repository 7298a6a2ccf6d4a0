"""The fuzz targets of tests/model/fuzz.py (queue path and HTTP path) for minutes: any bytes end
in one event or one 4xx, no traceback, nothing poisoned, no other request's record touched.
Prints the inputs tried per path and every violation (0 is the only pass).

Usage: .venv/bin/python bench/fuzz.py --minutes 30
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.model.fuzz import bodies, check_http, check_queue, operations  # noqa: E402

COUNTS = {"queue": 0, "http": 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    budget = settings(
        max_examples=args.batch,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )

    @budget
    @given(bodies())
    def queue(raw: bytes) -> None:
        COUNTS["queue"] += 1
        check_queue(raw)

    @budget
    @given(operations)
    def http(op: tuple[Any, ...]) -> None:
        COUNTS["http"] += 1
        check_http(op)

    deadline = time.monotonic() + args.minutes * 60
    violations = 0
    while time.monotonic() < deadline:
        for target in (queue, http):
            try:
                target()
            except Exception:
                violations += 1
                traceback.print_exc()
    print(
        f"fuzz: {COUNTS['queue']} queue inputs, {COUNTS['http']} HTTP calls in {args.minutes:g} min; violations: {violations}"
    )
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
