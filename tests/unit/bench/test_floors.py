"""The benchmarks' yardsticks (``bench/floors.py``): the lower bound and the ideal dispatchers."""

from __future__ import annotations

from bench.floors import Item, greedy, lower_bound


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
