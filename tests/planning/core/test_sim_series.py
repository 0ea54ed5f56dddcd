"""Runs of steps in closed form: every partial sum and every 'which step is running' answer is exact."""

from __future__ import annotations

import itertools

import pytest

from controlplane.planning.core.sim.series import StepSeries
from profiler.perfmodel import PerfModel


def convex(base: float, slope: float, kink: float, steeper: float):
    """A step time that is flat-ish, then climbs faster after ``kink``: the roofline's compute/memory switch."""
    return lambda k: base + max(slope * k, slope * kink + steeper * (k - kink))


@pytest.mark.parametrize(
    ("n", "kink"),
    list(itertools.product([1, 2, 3, 4, 7, 50, 1000], [-5.0, 0.0, 0.4, 1.0, 2.5, 48.6, 999.5, 5e4])),
)
def test_partial_sums_equal_the_steps_added_one_by_one(n, kink):
    step_s = convex(0.02, 1e-5, kink, 3e-4)
    series = StepSeries.probe(n, step_s)
    running = 0.0
    for m in range(n + 1):
        assert series.total(m) == pytest.approx(running, rel=1e-9, abs=1e-15)
        if m < n:
            running += step_s(m)


@pytest.mark.parametrize("kink", [0.5, 30.2, 500.0])
def test_the_step_running_at_a_time_is_the_first_whose_end_is_not_before_it(kink):
    series = StepSeries.probe(400, convex(0.01, 2e-6, kink, 1e-4))
    ends = [series.total(m) for m in range(401)]
    assert series.steps_by(0.0) == 0
    assert series.steps_by(ends[-1] * 2) == 400
    for m in range(1, 401):
        assert series.steps_by(ends[m]) == m  # a time on a boundary ends the run there
        assert series.steps_by((ends[m - 1] + ends[m]) / 2) == m  # inside step m-1: the run ends after it


def test_decode_runs_of_the_perf_model_sum_exactly():
    perf = PerfModel.for_names("llama-3.1-8b", "H100-SXM-80GB")
    for batch, context in [(1, 10), (64, 64 * 900), (256, 256 * 300), (200, 400_000)]:
        series = StepSeries.probe(300, lambda k, b=batch, c=context: perf.decode_step_s(b, c + k * b))
        by_hand = sum(perf.decode_step_s(batch, context + k * batch) for k in range(300))
        assert series.total(300) == pytest.approx(by_hand, rel=1e-12)
