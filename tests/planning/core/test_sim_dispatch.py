"""Dispatch within a pool: the heap a large pool keeps picks what a scan of every instance would."""

from __future__ import annotations

import random

import pytest

from controlplane.planning.core.sim.dispatch import LeastLoaded


class Stub:
    def __init__(self) -> None:
        self.value = 0.0
        self.load_changed = lambda: None


@pytest.mark.parametrize("size", [3, 16, 17, 200])
def test_the_least_loaded_instance_is_the_lowest_load_first_on_ties(size):
    rng = random.Random(size)
    workers = [Stub() for _ in range(size)]
    pool = LeastLoaded(workers, lambda w: w.value)
    for _ in range(5000):
        worker = rng.choice(workers)
        worker.value = float(rng.randint(0, 20))  # small integers: many ties
        worker.load_changed()
        expected = min(range(size), key=lambda i: (workers[i].value, i))
        assert pool.least() is workers[expected]
    assert len(pool.heap) <= 4 * size + 65
