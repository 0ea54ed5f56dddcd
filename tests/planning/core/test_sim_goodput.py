"""Goodput: the bisection finds a passing rate with a failing one within the tolerance above it."""

from __future__ import annotations

import pytest

from controlplane.planning.core.sim import (
    ClusterSpec,
    PoolSpec,
    SimulationError,
    Slo,
    goodput_search,
    poisson_requests,
    simulate,
)
from profiler import catalog

LLAMA = catalog.model("llama-3.1-8b")
LENGTHS = [(1020, 129), (300, 40), (2500, 300)]
SLO = Slo(ttft_s=0.5, tpot_s=0.05)
CLUSTER = ClusterSpec(
    model=LLAMA,
    pools=(
        PoolSpec.of("H100-SXM-80GB", role="prefill"),
        PoolSpec.of("A100-SXM-80GB", role="decode", count=2),
    ),
)


def attainment(rate: float, cluster: ClusterSpec = CLUSTER) -> float:
    return simulate(cluster, poisson_requests(rate, count=1000, lengths=LENGTHS, seed=3), SLO).attainment


def test_goodput_passes_and_a_rate_just_above_it_fails():
    search = goodput_search(CLUSTER, LENGTHS, SLO, 0.9, count=1000, seed=3, tolerance=0.02)
    assert search.rate_rps > 1.0
    assert attainment(search.rate_rps) >= 0.9
    failing = [p.rate_rps for p in search.probes if p.attainment < 0.9 and p.rate_rps > search.rate_rps]
    assert min(failing) <= search.rate_rps * 1.02
    assert len(search.probes) < 20


def test_a_bigger_cluster_has_more_goodput():
    bigger = ClusterSpec(
        model=LLAMA,
        pools=(
            PoolSpec.of("H100-SXM-80GB", role="prefill", count=2),
            PoolSpec.of("A100-SXM-80GB", role="decode", count=4),
        ),
    )
    small = goodput_search(CLUSTER, LENGTHS, SLO, 0.9, count=1000, seed=3).rate_rps
    assert goodput_search(bigger, LENGTHS, SLO, 0.9, count=1000, seed=3).rate_rps > 1.6 * small


def test_a_cluster_sized_by_the_rate_is_asked_at_each_rate():
    asked: list[float] = []

    def sized(rate: float) -> ClusterSpec:
        asked.append(rate)
        return CLUSTER

    search = goodput_search(sized, LENGTHS, SLO, 0.9, count=500, seed=3, lo=1.0, hi=64.0)
    assert asked == [p.rate_rps for p in search.probes]


def test_an_slo_no_rate_can_meet_has_no_goodput():
    impossible = Slo(ttft_s=0.001, tpot_s=0.05)
    assert goodput_search(CLUSTER, LENGTHS, impossible, 0.9, count=200, seed=1).rate_rps == 0.0


def test_it_refuses_a_target_outside_zero_to_one():
    with pytest.raises(SimulationError, match="attainment_target"):
        goodput_search(CLUSTER, LENGTHS, SLO, 90, count=100, seed=1)
