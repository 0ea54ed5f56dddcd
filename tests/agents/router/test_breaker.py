"""A worker's breaker opens after consecutive failures, lets one probe through after the cool-off, and closes on success."""

from __future__ import annotations

import pytest

from agents.router.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_it_opens_after_the_threshold_of_consecutive_failures(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, cool_off_s=5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # a success resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.acquire()
    assert breaker.ejections == 1


def test_after_the_cool_off_one_probe_goes_and_its_success_closes_it(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cool_off_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 4.9
    assert not breaker.available()
    clock.now += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire()  # the probe
    assert not breaker.acquire()  # only one at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.acquire()
    assert breaker.acquire()


def test_a_failed_probe_opens_it_for_another_cool_off(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cool_off_s=5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 5
    assert breaker.acquire()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.ejections == 2
    clock.now += 5
    assert breaker.acquire()


def test_a_probe_that_never_answers_frees_the_slot_after_a_cool_off(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cool_off_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.acquire()
    clock.now += 5
    assert breaker.acquire()


@pytest.mark.parametrize(("threshold", "cool_off_s"), [(0, 5.0), (3, 0.0)])
def test_it_refuses_nonsense_settings(threshold: int, cool_off_s: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(threshold, cool_off_s)
