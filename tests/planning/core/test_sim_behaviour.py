"""What the simulator does with a cluster: determinism, heterogeneous pools, local prefill, prefix cache,
KV capacity, prefill chunking, and the energy and cost it accounts."""

from __future__ import annotations

import dataclasses

import pytest

from controlplane.planning.core.sim import ClusterSpec, PoolSpec, Request, Slo, poisson_requests, simulate
from profiler import catalog
from profiler.perfmodel import PerfModel

LLAMA = catalog.model("llama-3.1-8b")
H100, A100 = "H100-SXM-80GB", "A100-SXM-80GB"
SLO = Slo(ttft_s=1.0, tpot_s=0.1)
LENGTHS = [(1020, 129), (300, 40), (2500, 400), (80, 1), (4000, 20)]


def split(prefill: int = 1, decode: int = 1, **options) -> ClusterSpec:
    return ClusterSpec(
        model=LLAMA,
        pools=(
            PoolSpec.of(H100, role="prefill", count=prefill),
            PoolSpec.of(A100, role="decode", count=decode),
        ),
        **options,
    )


def test_the_same_input_gives_the_same_result():
    requests = poisson_requests(15.0, count=2000, lengths=LENGTHS, seed=11)
    assert simulate(split(2, 3), requests, SLO) == simulate(split(2, 3), requests, SLO)


def test_results_follow_the_order_the_requests_were_given_in():
    requests = poisson_requests(5.0, count=50, lengths=LENGTHS, seed=2)
    forward = simulate(split(), requests, SLO)
    backward = simulate(split(), requests[::-1], SLO)
    assert backward.ttft_s == forward.ttft_s[::-1]
    assert backward.e2e_s == forward.e2e_s[::-1]


def test_heterogeneous_pools_of_mixed_tiers_and_tp_share_the_work():
    cluster = ClusterSpec(
        model=LLAMA,
        pools=(
            PoolSpec.of(H100, role="prefill"),
            PoolSpec.of(A100, role="prefill", tp=2),
            PoolSpec.of(A100, role="decode", count=2),
            PoolSpec.of(H100, role="decode", tp=2),
        ),
    )
    result = simulate(cluster, poisson_requests(30.0, count=3000, lengths=LENGTHS, seed=1), SLO)
    assert result.completed == 3000
    assert [pool.busy_s > 0 for pool in result.pools] == [True] * 4
    assert [pool.gpus for pool in result.pools] == [1, 2, 2, 2]
    assert result.attainment > 0.9


def test_a_short_prompt_under_the_local_prefill_threshold_skips_the_transfer():
    request = [Request(0.0, 200, 30)]
    sent = simulate(split(kv_link="ethernet"), request, SLO)
    local = simulate(split(kv_link="ethernet", local_prefill_threshold=256), request, SLO)
    h100, a100 = PerfModel.for_names("llama-3.1-8b", H100), PerfModel.for_names("llama-3.1-8b", A100)
    assert sent.ttft_s[0] == pytest.approx(h100.prefill_time_s([200]) + h100.kv_transfer_s(200, "ethernet"))
    assert local.ttft_s[0] == pytest.approx(a100.prefill_time_s([200]))  # prefilled where it decodes
    assert local.pools[0].busy_s == 0.0
    assert sent.pools[0].busy_s > 0.0


def test_cached_prompt_tokens_are_not_prefilled_but_still_cross_the_link():
    cached = simulate(split(), [Request(0.0, 2000, 10, cached_prompt_tokens=1500)], SLO)
    h100 = PerfModel.for_names("llama-3.1-8b", H100)
    # the 500 new tokens attend to the 1,500 cached ones: 500^2 + 2*500*1500 in the attention sum
    prefill_s = h100.prefill_time_from_sums_s(500, 500.0**2 + 2 * 500 * 1500, 1)
    assert cached.ttft_s[0] == pytest.approx(prefill_s + h100.kv_transfer_s(2000))
    assert cached.ttft_s[0] < simulate(split(), [Request(0.0, 2000, 10)], SLO).ttft_s[0]


def test_a_request_whose_kv_does_not_fit_waits_for_one_to_finish():
    small = dataclasses.replace(catalog.tier(A100), memory_gb=19.5)  # room for 6,415 KV tokens
    cluster = ClusterSpec(
        model=LLAMA, pools=(PoolSpec.of(H100, role="prefill"), PoolSpec(tier=small, role="decode"))
    )
    requests = [Request(0.0, 2000, 1000), Request(0.0, 2000, 1000), Request(0.0, 2000, 1000)]
    result = simulate(cluster, requests, SLO)
    first_done = min(result.e2e_s[:2])
    alone_s = sum(PerfModel(model=LLAMA, tier=small).decode_step_s(1, 2000 + j) for j in range(1, 1000))
    assert result.e2e_s[2] == pytest.approx(first_done + alone_s, rel=0.01)  # it decodes once one has left
    roomy = simulate(split(), requests, SLO)
    assert max(roomy.e2e_s) < 0.6 * result.e2e_s[2]


def test_one_token_outputs_end_with_their_prefill():
    result = simulate(split(), [Request(0.0, 500, 1)], SLO)
    assert result.e2e_s == result.ttft_s
    assert result.tpot_s == (0.0,)
    assert result.pools[1].busy_s == 0.0


def test_without_chunking_waiting_prompts_starve_the_decodes():
    # Past what one instance can prefill, prompts always wait; unchunked, each pass stops every decode,
    # while chunking caps the prompt tokens of each step and the decodes keep their pace.
    requests = poisson_requests(12.0, count=1500, lengths=[(1020, 129)], seed=5)
    pool = (PoolSpec.of(H100, role="colocated"),)
    chunked = simulate(ClusterSpec(model=LLAMA, pools=pool), requests, SLO)
    stalled = simulate(ClusterSpec(model=LLAMA, pools=pool, chunked_prefill=False), requests, SLO)
    assert stalled.tpot.p90 > SLO.tpot_s > 2 * chunked.tpot.p90
    assert stalled.ttft.p90 < chunked.ttft.p90  # the prompts, in return, wait less


def test_every_gpu_costs_its_price_for_the_whole_run_and_draws_between_idle_and_tdp():
    requests = poisson_requests(4.0, count=400, lengths=LENGTHS, seed=8)
    result = simulate(split(1, 3), requests, SLO)
    hours = result.duration_s / 3600
    assert result.cost_usd_per_h == pytest.approx(3.00 + 3 * 1.80)
    assert result.cost_usd == pytest.approx(result.cost_usd_per_h * hours)
    h100, a100 = catalog.tier(H100), catalog.tier(A100)
    assert h100.idle_w + 3 * a100.idle_w < result.power_kw * 1000 < h100.tdp_w + 3 * a100.tdp_w
    assert result.energy_j == pytest.approx(sum(pool.energy_j for pool in result.pools))
    assert all(0.0 <= pool.utilization <= 1.0 for pool in result.pools)
    assert result.usd_per_million_tokens == pytest.approx(
        result.cost_usd / (result.tokens_in + result.tokens_out) * 1e6
    )
    repriced = simulate(split(1, 3), requests, SLO, prices_usd_per_gpu_h={A100: 1.00})
    assert repriced.cost_usd_per_h == pytest.approx(3.00 + 3 * 1.00)
    assert repriced.pools[1].cost_usd == pytest.approx(3 * 1.00 * hours)


def test_a_busier_cluster_draws_more_power():
    quiet = simulate(split(), poisson_requests(1.0, count=300, lengths=LENGTHS, seed=3), SLO)
    busy = simulate(split(), poisson_requests(8.0, count=300, lengths=LENGTHS, seed=3), SLO)
    assert busy.power_kw > quiet.power_kw
    assert busy.pools[0].utilization > quiet.pools[0].utilization
