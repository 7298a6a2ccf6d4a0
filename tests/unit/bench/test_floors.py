"""The benchmarks' yardsticks (``bench/floors.py``): the lower bound and the ideal dispatchers."""

from __future__ import annotations

from bench.floors import Burst, Item, greedy, greedy_windowed, lower_bound


def test_the_lower_bound_is_the_larger_of_work_over_quota_and_the_longest_item() -> None:
    items = [Item(2, 100), Item(2, 100), Item(1, 300, arrival=50)]
    assert lower_bound(items, quota=4) == (350, 175, 350)


def test_the_ideal_dispatcher_fills_freed_cores_with_what_fits_and_pays_for_the_order() -> None:
    # Quota 2: ten short items, then a long one. In submission order the long one starts last and
    # runs alone (the tail); longest first, the short ones run beside it.
    items = [*(Item(1, 10) for _ in range(10)), Item(1, 100)]
    assert greedy(items, quota=2) == 150
    assert greedy(sorted(items, key=lambda i: -i.cores * i.seconds), quota=2) == 100
    assert lower_bound(items, quota=2)[0] == 100
    # First fit: a freed core goes to the first waiting item that fits, not only to the head.
    assert greedy([Item(1, 300), Item(3, 10), Item(4, 100), Item(1, 5)], quota=4) == 400
    # An item arriving later starts at its arrival, not before.
    assert greedy([Item(1, 10, arrival=100)], quota=4) == 110


def test_the_windowed_dispatcher_waits_for_a_create_to_leave_the_sliding_window() -> None:
    # Two creates in any 10 s: the third and fourth requests start when the first two creates
    # leave the window (t=10), although cores are free all along.
    burst = [Burst(1, 1, 4), Burst(1, 1, 4), Burst(1, 1, 4), Burst(1, 1, 4)]
    assert greedy_windowed(burst[:2], cores=10, groups=10, windows=((10, 2),)) == 4
    assert greedy_windowed(burst, cores=10, groups=10, windows=((10, 2),)) == 14
    # Cores bind too: an array of 3 one-core pods waits for cores, then counts 3 creates.
    assert greedy_windowed([Burst(1, 2, 20), Burst(3, 1, 5)], cores=3, groups=10, windows=((100, 10),)) == 25
