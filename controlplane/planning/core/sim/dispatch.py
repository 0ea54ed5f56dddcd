"""Where a request goes: each pool keeps its instances least loaded first, in a heap, so a choice costs
O(pools x log instances) instead of a scan of every instance (which dominated at hundreds of instances).

The instances of a pool are identical, so within a pool the least loaded one is the choice; across pools
the simulator compares each pool's candidate by what taking the request would cost it (see engine.py).
An instance reports each change of its load; a stale heap entry is dropped when it surfaces.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from .workers import Instance

W = TypeVar("W", bound=Instance)
# Up to this many instances a scan is cheaper than keeping the heap; both pick the same instance.
_SCAN_UP_TO = 16


class LeastLoaded(Generic[W]):
    """The instances of one pool by ``load``, lowest first (ties: the first instance)."""

    def __init__(self, workers: Sequence[W], load: Callable[[W], float]) -> None:
        self.workers = list(workers)
        self.load = load
        self.versions = [0] * len(self.workers)
        self.heap: list[tuple[float, int, int]] = []
        self.scan = len(self.workers) <= _SCAN_UP_TO
        if not self.scan:
            self._rebuild()
            for index, worker in enumerate(self.workers):
                worker.load_changed = self._reporter(index)

    def _reporter(self, index: int) -> Callable[[], None]:
        def changed() -> None:
            self.versions[index] += 1
            heapq.heappush(self.heap, (self.load(self.workers[index]), index, self.versions[index]))
            if len(self.heap) > 4 * len(self.workers) + 64:
                self._rebuild()

        return changed

    def _rebuild(self) -> None:
        self.heap = [(self.load(w), i, self.versions[i]) for i, w in enumerate(self.workers)]
        heapq.heapify(self.heap)

    def least(self) -> W:
        """The least loaded instance now."""
        if self.scan:
            return min(self.workers, key=self.load)
        heap, versions = self.heap, self.versions
        while True:
            _, index, version = heap[0]
            if version == versions[index]:
                return self.workers[index]
            heapq.heappop(heap)
