"""Capacities per instance from the perf model and queueing: ordered as the hardware is, bounded by the SLO,
and close to what the simulator measures."""

from __future__ import annotations

import numpy as np
import pytest

from controlplane.planning.core.capacity import (
    LengthArrays,
    prefill_capacity,
    prefill_pass_times,
    serving_capacity,
)
from controlplane.planning.core.sim import ClusterSpec, PoolSpec, Slo, goodput_search
from profiler import catalog
from profiler.perfmodel import PerfModel

MODEL = catalog.model("llama-3.1-8b")
RNG = np.random.default_rng(11)
LENGTHS = [(int(p) + 1, int(o) + 1) for p, o in zip(RNG.lognormal(6.8, 0.7, 300), RNG.lognormal(4.8, 0.9, 300),
                                                      strict=True)]
ARRAYS = LengthArrays.of(tuple(p for p, _ in LENGTHS), tuple(o for _, o in LENGTHS), (0,) * len(LENGTHS))
EVERY = np.ones(len(ARRAYS), dtype=bool)
NONE = ~EVERY


def perf(tier: str, tp: int = 1) -> PerfModel:
    return PerfModel(model=MODEL, tier=catalog.tier(tier), tp=tp)


def prefill(tier: str, ttft: float = 1.0, remote=EVERY):
    model = perf(tier)
    return prefill_capacity(model, ARRAYS, prefill_pass_times(model, ARRAYS), remote, ttft_s=ttft, quantile=0.95,
                            link="infiniband", token_budget=8192)


def serving(tier: str, local=NONE, tpot: float = 0.1, role="decode", chunk=512):
    return serving_capacity(perf(tier), ARRAYS, local, role=role, ttft_s=1.0, tpot_s=tpot, quantile=0.95,
                            chunk_tokens=chunk, max_seqs=256)


def test_a_faster_tier_carries_more():
    assert prefill("H100-SXM-80GB").capacity_rps > prefill("A100-SXM-80GB").capacity_rps > prefill("L4-24GB").capacity_rps
    assert serving("H200-SXM-141GB").capacity_rps > serving("A100-SXM-80GB").capacity_rps > serving("L4-24GB").capacity_rps


def test_a_tighter_slo_carries_less():
    assert prefill("H100-SXM-80GB", ttft=0.5).capacity_rps < prefill("H100-SXM-80GB", ttft=2.0).capacity_rps
    assert serving("H100-SXM-80GB", tpot=0.03).capacity_rps < serving("H100-SXM-80GB", tpot=0.1).capacity_rps


def test_an_slo_the_instance_cannot_meet_gives_no_capacity():
    assert prefill("L4-24GB", ttft=0.01) is None
    assert serving("L4-24GB", tpot=0.001) is None


def test_prefill_capacity_counts_requests_of_the_whole_stream():
    long_only = ARRAYS.uncached > 512
    whole = prefill("H100-SXM-80GB", remote=long_only)
    assert whole.capacity_rps * long_only.mean() < prefill("H100-SXM-80GB").capacity_rps * 1.5


def test_local_prefill_takes_decode_capacity():
    local = ARRAYS.uncached <= 512
    assert serving("H100-SXM-80GB", local=local).capacity_rps < serving("H100-SXM-80GB").capacity_rps


def test_power_grows_with_load():
    capacity = serving("A100-SXM-80GB")
    assert capacity.power_w(0.0) < capacity.power_w(0.5) < capacity.power_w(1.0) <= 400.0


@pytest.mark.parametrize(("role", "tier"), [("prefill", "H100-SXM-80GB"), ("decode", "A100-SXM-80GB"),
                                            ("colocated", "L40S-48GB")])
def test_the_capacity_model_is_within_a_factor_of_the_simulated_goodput(role, tier):
    slo = Slo(1.0, 0.1)
    if role == "prefill":
        modelled = prefill(tier).capacity_rps

        def cluster(rate):
            return ClusterSpec(model=MODEL, kv_link="infiniband", pools=(
                PoolSpec.of(tier, role="prefill", count=2),
                PoolSpec.of("H200-SXM-141GB", role="decode", count=int(rate // 5) + 2)))
    elif role == "decode":
        modelled = serving(tier).capacity_rps

        def cluster(rate):
            return ClusterSpec(model=MODEL, kv_link="infiniband", pools=(
                PoolSpec.of("H100-SXM-80GB", role="prefill", count=int(rate // 8) + 2),
                PoolSpec.of(tier, role="decode", count=2)))
    else:
        modelled = serving(tier, local=EVERY, role="colocated", chunk=1024).capacity_rps

        def cluster(rate):
            return ClusterSpec(model=MODEL, chunk_tokens=1024, pools=(PoolSpec.of(tier, role="colocated", count=2),))
    simulated = goodput_search(cluster, LENGTHS, slo, 0.95, duration_s=90, lo=modelled * 2, tolerance=0.05).rate_rps / 2
    assert 0.6 * simulated <= modelled <= 1.15 * simulated
