"""Cost of computing due slots (pure CPU, no I/O): what one ``schedules`` timer run spends per
schedule, and the worst case the slot cap allows. Prints numbers; asserts nothing.

    .venv/bin/python bench/schedule_slots.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.schedules.definitions import Schedule
from shared.schedules.slots import due_slots, slots_between

IMAGE = "mcr.microsoft.com/azurelinux/base/core:3.0"


def timed(fn: Callable[[], object], repeat: int = 20) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    fall = datetime(2026, 10, 25, tzinfo=UTC)
    cases = {
        "daily 02:30 Europe/Paris, one day": (Schedule("d", "30 2 * * *", "Europe/Paris", {"image": IMAGE}), 1),
        "*/10 1-3 Europe/Paris, DST day": (Schedule("f", "*/10 1-3 * * *", "Europe/Paris", {"image": IMAGE}), 1),
        "every minute UTC, one day (capped at 500)": (Schedule("m", "* * * * *", "UTC", {"image": IMAGE}), 1),
        "yearly Feb 29, ten years": (Schedule("y", "0 0 29 2 *", "UTC", {"image": IMAGE}), 3650),
    }
    for label, (schedule, days) in cases.items():
        ms = timed(lambda s=schedule, d=days: slots_between(s, fall, fall + timedelta(days=d)))
        count = len(slots_between(schedule, fall, fall + timedelta(days=days)))
        print(f"{label:<45} {count:>4} slots  {ms:7.2f} ms")
    many = [Schedule(f"s{i}", f"{i % 60} {i % 24} * * *", "Europe/Berlin", {"image": IMAGE}) for i in range(100)]
    ms = timed(
        lambda: due_slots(
            many, now=fall + timedelta(minutes=1), timer_schedule="0 * * * * *", last_run=None, past_due=False
        )
    )
    print(f"{'one timer run, 100 daily schedules':<45} {'':>4}        {ms:7.2f} ms")


if __name__ == "__main__":
    main()
