"""A circuit breaker per worker: eject a worker after consecutive failures, probe it back after a cool-off.

Closed: requests flow; each failure (a connect error, a timeout, a 5xx, a stream cut short) adds to a
count that a success resets. At ``failure_threshold`` consecutive failures the breaker opens: the
worker gets no requests for ``cool_off_s``. Then it is half-open: the next request that asks is the
probe, alone; its success closes the breaker, its failure opens it for another cool-off. A probe that
never reports back (its request hung past every timeout) frees the half-open slot after a cool-off.
The router retries a failed leg elsewhere, so a failed probe costs its client nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    """The value ``cleave_router_breaker_state`` reports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """One worker's breaker. Not thread-safe: the router touches it from its event loop only."""

    def __init__(
        self,
        failure_threshold: int = 3,
        cool_off_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if cool_off_s <= 0:
            raise ValueError(f"cool_off_s must be > 0, got {cool_off_s}")
        self.failure_threshold = failure_threshold
        self.cool_off_s = cool_off_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_at: float | None = None
        self.ejections = 0

    @property
    def state(self) -> BreakerState:
        """The state now; an open breaker whose cool-off is over reads half-open."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cool_off_s:
            self._state, self._probe_at = BreakerState.HALF_OPEN, None
        return self._state

    def available(self) -> bool:
        """Could a request go to this worker now (without taking the probe slot)?"""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN:
            return self._probe_at is None or self._clock() - self._probe_at >= self.cool_off_s
        return False

    def acquire(self) -> bool:
        """Ask to send a request: True if it may go (in half-open, it becomes the one probe)."""
        if not self.available():
            return False
        if self._state is BreakerState.HALF_OPEN:
            self._probe_at = self._clock()
        return True

    def record_success(self) -> None:
        """The worker answered: close the breaker and forget past failures."""
        self._state, self._failures, self._probe_at = BreakerState.CLOSED, 0, None

    def record_failure(self) -> None:
        """The worker failed a request; opens the breaker at the threshold, or when a probe fails."""
        self._failures += 1
        state = self.state
        if state is BreakerState.HALF_OPEN or (
            state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            self._state, self._opened_at, self._probe_at = BreakerState.OPEN, self._clock(), None
            self.ejections += 1
