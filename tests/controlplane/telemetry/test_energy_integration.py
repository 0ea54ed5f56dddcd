"""Energy is power integrated over time: a reading lasts until the next one, gaps are not invented."""

from __future__ import annotations

import pytest

from controlplane.telemetry.accounting import integrate, reading_durations_s


def test_each_reading_stands_until_the_next():
    readings = [(0.0, 100.0), (10.0, 200.0), (20.0, 300.0)]
    # The last reading stands for one reporting interval.
    assert integrate(readings, interval_s=10.0) == pytest.approx(100 * 10 + 200 * 10 + 300 * 10)


def test_uneven_intervals_weigh_readings_by_their_duration():
    readings = [(0.0, 100.0), (5.0, 200.0), (20.0, 400.0)]
    assert integrate(readings, interval_s=10.0) == pytest.approx(100 * 5 + 200 * 15 + 400 * 10)


def test_a_gap_longer_than_two_intervals_counts_one_interval():
    assert reading_durations_s([0.0, 20.0, 100.0, 110.0], interval_s=10.0) == [20.0, 10.0, 10.0, 10.0]


def test_no_readings_no_energy():
    assert integrate([], interval_s=10.0) == 0.0
