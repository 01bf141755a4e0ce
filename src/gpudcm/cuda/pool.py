"""A bounded pool of per-device resources (CupyOps, nvJPEG decode states) shared by threads.

A thread leases one for the length of a decode call and gives it back; at most `cap` idle ones are
kept per key, the rest are destroyed when given back. So any number of threads and calls hold at most
(threads decoding at once) resources while they run and `cap` afterwards, instead of one per thread
that lives as long as the thread does (or, for raw library handles, forever).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Pool(Generic[T]):
    def __init__(self, create: Callable[[Hashable], T], destroy: Callable[[T], None], cap: int = 4) -> None:
        if cap < 0:
            raise ValueError("cap must be >= 0")
        self._create, self._destroy, self.cap = create, destroy, cap
        self._idle: dict[Hashable, list[T]] = {}
        self._lock = threading.Lock()
        self.created = 0
        self.destroyed = 0

    @contextmanager
    def lease(self, key: Hashable) -> Iterator[T]:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            item = idle.pop() if idle else None
        if item is None:
            item = self._create(key)
            with self._lock:
                self.created += 1
        try:
            yield item
        finally:
            with self._lock:
                idle = self._idle.setdefault(key, [])
                keep = len(idle) < self.cap
                if keep:
                    idle.append(item)
            if not keep:
                self._destroy(item)
                with self._lock:
                    self.destroyed += 1

    @property
    def live(self) -> int:
        """Resources created and not yet destroyed (leased now, or idle)."""
        return self.created - self.destroyed

    def clear(self) -> None:
        """Destroy every idle resource."""
        with self._lock:
            items = [x for idle in self._idle.values() for x in idle]
            self._idle.clear()
        for item in items:
            self._destroy(item)
            with self._lock:
                self.destroyed += 1
