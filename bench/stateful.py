"""The request-life state machine (tests/model/request_life.py) for minutes, not seconds: the
real services against the in-memory world, with every interleaving hypothesis finds in the time
given. Prints how many runs and steps were tried and every violation (0 is the only pass).

Usage: .venv/bin/python bench/stateful.py --minutes 30 [--steps 80]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402

from tests.model import request_life  # noqa: E402


class Counting(request_life.RequestLife):
    runs = 0
    steps = 0

    def __init__(self) -> None:
        super().__init__()
        Counting.runs += 1

    def teardown(self) -> None:
        Counting.steps += self.world.step
        super().teardown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=80, help="longest rule sequence per run")
    parser.add_argument("--batch", type=int, default=50, help="runs per hypothesis call (fresh random seeds each)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    deadline = time.monotonic() + args.minutes * 60
    violations = 0
    while time.monotonic() < deadline:
        try:
            run_state_machine_as_test(
                Counting,
                settings=settings(
                    max_examples=args.batch,
                    stateful_step_count=args.steps,
                    deadline=None,
                    database=None,
                    phases=[Phase.generate, Phase.shrink],
                    suppress_health_check=list(HealthCheck),
                    report_multiple_bugs=False,
                ),
            )
        except Exception:
            violations += 1
            traceback.print_exc()
    print(f"stateful: {Counting.runs} runs, {Counting.steps} steps in {args.minutes:g} min; violations: {violations}")
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
