"""Input the simulator cannot serve is refused with a ProfilerError that says what is wrong."""

from __future__ import annotations

import pytest

from controlplane.planning.core.sim import ClusterSpec, PoolSpec, Request, SimulationError, Slo, simulate
from profiler import catalog
from profiler.errors import ConfigurationError, ProfilerError, UnknownTierError

LLAMA = catalog.model("llama-3.1-8b")
SLO = Slo(ttft_s=1.0, tpot_s=0.1)
ONE = [Request(0.0, 100, 10)]


def cluster(*pools: PoolSpec, **options) -> ClusterSpec:
    return ClusterSpec(model=options.pop("model", LLAMA), pools=pools, **options)


def test_an_unknown_tier_lists_the_known_ones():
    with pytest.raises(UnknownTierError, match="unknown GPU tier 'X100'; known tiers: A100"):
        PoolSpec.of("X100", role="decode")


def test_a_tp_that_does_not_divide_the_heads_names_the_pool():
    bad = cluster(
        PoolSpec.of("H100-SXM-80GB", role="prefill", tp=3), PoolSpec.of("A100-SXM-80GB", role="decode")
    )
    with pytest.raises(
        ConfigurationError, match=r"pool prefill H100-SXM-80GB x1 TP3: .*does not divide the 32"
    ):
        simulate(bad, ONE, SLO)


def test_a_model_that_does_not_fit_says_by_how_much():
    bad = cluster(
        PoolSpec.of("H100-SXM-80GB", role="prefill", tp=4),
        PoolSpec.of("A100-SXM-80GB", role="decode"),
        model=catalog.model("llama-3.1-70b"),
    )
    with pytest.raises(
        ConfigurationError, match=r"pool decode A100-SXM-80GB x1 TP1: .*does not fit.*short by"
    ):
        simulate(bad, ONE, SLO)


def test_a_request_no_instance_can_hold_is_refused_rather_than_left_waiting():
    split = cluster(PoolSpec.of("H100-SXM-80GB", role="prefill"), PoolSpec.of("A100-SXM-80GB", role="decode"))
    with pytest.raises(SimulationError, match="request 0 needs 900000 KV tokens"):
        simulate(split, [Request(0.0, 800_000, 100_000)], SLO)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: cluster(PoolSpec.of("H100-SXM-80GB", role="prefill")), "has no decode instance"),
        (lambda: cluster(PoolSpec.of("H100-SXM-80GB", role="decode")), "has no prefill instance"),
        (lambda: cluster(PoolSpec.of("H100-SXM-80GB", role="colocated", count=0)), "no instances"),
        (
            lambda: cluster(
                PoolSpec.of("H100-SXM-80GB", role="colocated"), PoolSpec.of("H100-SXM-80GB", role="decode")
            ),
            "either colocated or disaggregated",
        ),
        (
            lambda: cluster(PoolSpec.of("H100-SXM-80GB", role="colocated"), kv_link="carrier-pigeon"),
            "kv_link",
        ),
        (lambda: cluster(PoolSpec.of("H100-SXM-80GB", role="colocated"), chunk_tokens=0), "chunk_tokens"),
        (lambda: PoolSpec.of("H100-SXM-80GB", role="router"), "role"),
        (lambda: PoolSpec.of("H100-SXM-80GB", role="decode", engine="tgi"), "engine"),
        (lambda: PoolSpec.of("H100-SXM-80GB", role="decode", tp=0), "tp"),
        (lambda: Slo(ttft_s=0.0, tpot_s=0.1), "ttft_s"),
        (lambda: Slo(ttft_s=1.0, tpot_s=-1.0), "tpot_s"),
    ],
)
def test_a_cluster_or_slo_that_makes_no_sense_is_refused(make, message):
    with pytest.raises(SimulationError, match=message):
        make()


def test_an_empty_request_list_is_refused():
    colocated = cluster(PoolSpec.of("H100-SXM-80GB", role="colocated"))
    with pytest.raises(SimulationError, match="request list is empty"):
        simulate(colocated, [], SLO)
    assert issubclass(SimulationError, ProfilerError)
