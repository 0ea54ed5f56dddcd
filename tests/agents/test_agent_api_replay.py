"""A signature is good once: the agent remembers the ones it took for as long as their timestamp is valid."""

from __future__ import annotations

from agents.api import SeenSignatures
from profiler.signing import MAX_CLOCK_SKEW_S


def test_a_signature_is_accepted_once():
    seen = SeenSignatures()
    assert seen.first_use("abc", sent_at=1000.0, now=1000.0)
    assert not seen.first_use("abc", sent_at=1000.0, now=1001.0)
    assert seen.first_use("abd", sent_at=1000.0, now=1001.0)


def test_signatures_are_forgotten_once_the_clock_window_refuses_them_anyway():
    seen = SeenSignatures()
    seen.first_use("abc", sent_at=1000.0, now=1000.0)
    seen.first_use("new", sent_at=1000.0 + 2 * MAX_CLOCK_SKEW_S, now=1000.0 + 2 * MAX_CLOCK_SKEW_S)
    assert len(seen) == 1


def test_the_memory_is_bounded():
    seen = SeenSignatures(max_entries=3)
    for index in range(10):
        seen.first_use(f"s{index}", sent_at=1000.0, now=1000.0)
    assert len(seen) == 3
