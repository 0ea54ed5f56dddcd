"""Runs of engine steps in closed form: how long k steps take, and which step is running at a time.

While an instance's batch keeps its composition, each step's time is the perf model's roofline: a fixed
part plus the larger of a compute time and a memory time, each affine in what grows by the same amount
every step (the decode batch's total context grows by the batch size; a prompt's chunk attends to a prefix
one chunk longer). The larger of two affine functions is convex and piecewise affine with at most one
kink, so the k-th step takes ``max(left(k), right(k))`` for two lines, and the time of the first m steps is
two arithmetic series. Events then happen only where the batch changes, not at every step.

A StepSeries is built from four step times (the first two and the last two of the run): by convexity the
line through the first two and the line through the last two give every step exactly, wherever the kink
lies, so the perf model is only ever asked through its public O(1) methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable


class StepSeries:
    """The times of steps 0..n-1: step k takes ``left0 + left_slope*k`` for k < split, else the right line."""

    __slots__ = ("left0", "left_slope", "n", "right0", "right_slope", "split")

    def __init__(self, n: int, left0: float, left_slope: float, right0: float, right_slope: float) -> None:
        self.n = n
        self.left0, self.left_slope = left0, left_slope
        self.right0, self.right_slope = right0, right_slope
        if right_slope - left_slope <= 1e-15 * (abs(left_slope) + abs(right_slope)):
            split = n  # one line (or numerically so): the left one holds throughout
        else:
            crossing = (right0 - left0) / (left_slope - right_slope)
            split = n if crossing >= n else (0 if crossing < 0 else int(crossing) + 1)
        self.split = split

    @classmethod
    def probe(cls, n: int, step_s: Callable[[int], float]) -> StepSeries:
        """A run of ``n`` >= 1 steps whose k-th step takes ``step_s(k)``, a convex function with one kink
        at most, built from at most four calls."""
        first = step_s(0)
        if n == 1:
            return cls(1, first, 0.0, first, 0.0)
        second = step_s(1)
        if n == 2:
            return cls(2, first, second - first, first, second - first)
        last = step_s(n - 1)
        before_last = step_s(n - 2) if n > 3 else second
        right_slope = last - before_last
        return cls(n, first, second - first, last - right_slope * (n - 1), right_slope)

    def total(self, m: int) -> float:
        """Seconds the first ``m`` steps take (0 <= m <= n)."""
        j = m if m < self.split else self.split
        seconds = j * self.left0 + self.left_slope * (j * (j - 1) * 0.5)
        rest = m - j
        if rest > 0:
            seconds += rest * self.right0 + self.right_slope * ((j + m - 1) * rest * 0.5)
        return seconds

    def steps_by(self, elapsed_s: float) -> int:
        """The fewest steps that take at least ``elapsed_s``: the step running then ends the run early.

        Solves the series' quadratic, then corrects the rounding by single steps.
        """
        n = self.n
        if elapsed_s <= 0.0:
            return 0
        if self.total(n) <= elapsed_s:
            return n
        head = self.total(self.split)
        if elapsed_s <= head:
            guess = _quadratic_root(self.left_slope * 0.5, self.left0 - self.left_slope * 0.5, elapsed_s)
        else:
            j = self.split
            linear = self.right0 + self.right_slope * (j - 0.5)
            guess = j + _quadratic_root(self.right_slope * 0.5, linear, elapsed_s - head)
        m = min(max(math.ceil(guess), 0), n)
        for _ in range(8):
            if m < n and self.total(m) < elapsed_s:
                m += 1
            elif m > 0 and self.total(m - 1) >= elapsed_s:
                m -= 1
            else:
                return m
        return self._bisect(elapsed_s)

    def _bisect(self, elapsed_s: float) -> int:
        low, high = 0, self.n  # total(high) >= elapsed_s > total(low - 1)
        while low < high:
            middle = (low + high) // 2
            if self.total(middle) >= elapsed_s:
                high = middle
            else:
                low = middle + 1
        return low


def _quadratic_root(a: float, b: float, c: float) -> float:
    """The positive root of ``a*x*x + b*x = c`` (c > 0, b > 0), in the form that does not cancel."""
    disc = b * b + 4.0 * a * c
    if disc <= 0.0 or b + math.sqrt(disc) <= 0.0:
        return c / b if b > 0 else 0.0
    return 2.0 * c / (b + math.sqrt(disc))
