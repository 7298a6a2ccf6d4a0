"""One client per key (vault URL, registry, account URL) per process, created on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable


class PerKey[T]:
    """``per_key(key) -> T``: the process's object for ``key``, made by ``make(key)`` the first time."""

    def __init__(self, make: Callable[[str], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._made: dict[str, T] = {}

    def __call__(self, key: str) -> T:
        with self._lock:
            found = self._made.get(key)
            if found is None:
                found = self._made[key] = self._make(key)
            return found
