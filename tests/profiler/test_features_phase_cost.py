"""Phase costs: what a request costs in prefill and decode GPU-seconds, and the class that follows."""

from __future__ import annotations

import time

import numpy as np
import pytest

from profiler import features
from profiler.errors import ConfigurationError, ProfilerError, UnknownModelError, UnknownTierError
from profiler.features import CLASSES, PhaseCostModel, classify_share
from profiler.traces import TraceRecord


@pytest.fixture(scope="module")
def llama8b() -> PhaseCostModel:
    return PhaseCostModel.for_service("llama-3.1-8b", 0.1)


def test_the_thresholds_decide_the_class_at_their_edges():
    assert CLASSES == ("prefill-heavy", "balanced", "decode-heavy")
    assert classify_share(features.PREFILL_HEAVY_AT) == "prefill-heavy"
    assert classify_share(features.DECODE_HEAVY_AT) == "decode-heavy"
    assert classify_share((features.PREFILL_HEAVY_AT + features.DECODE_HEAVY_AT) / 2) == "balanced"
    assert classify_share(1.0) == "prefill-heavy"
    assert classify_share(0.0) == "decode-heavy"


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_it_rejects_a_share_outside_zero_to_one(share):
    with pytest.raises(ProfilerError, match="prefill share"):
        classify_share(share)


@pytest.mark.parametrize(
    ("model", "tier", "tpot_s", "expected"),
    [
        ("llama-3.1-8b", "H100-SXM-80GB", 0.1, "balanced"),
        ("llama-3.1-8b", "H100-SXM-80GB", 0.02, "decode-heavy"),  # a tight TPOT shrinks the decode batch
        ("llama-2-7b", "H100-SXM-80GB", 0.1, "decode-heavy"),  # no GQA: 4x the KV to read per step
        ("llama-3.1-70b", "H200-SXM-141GB", 0.1, "prefill-heavy"),  # big model, room for big decode batches
    ],
)
def test_the_same_request_is_classed_by_its_gpu_time_not_its_tokens(model, tier, tpot_s, expected):
    cost = PhaseCostModel.for_service(model, tpot_s, tier=tier).cost(1000, 100)
    assert cost.request_class == expected
    assert cost.prefill_share == pytest.approx(cost.prefill_gpu_s / (cost.prefill_gpu_s + cost.decode_gpu_s))


def test_prefix_cache_hits_cost_no_prefill(llama8b):
    cold = llama8b.cost(4000, 50)
    warm = llama8b.cost(4000, 50, cached_prompt_tokens=3000)
    assert warm.prefill_gpu_s < 0.4 * cold.prefill_gpu_s
    assert warm.decode_gpu_s == cold.decode_gpu_s
    assert llama8b.cost(4000, 50, cached_prompt_tokens=4000).prefill_gpu_s == 0.0


def test_the_first_output_token_comes_from_prefill(llama8b):
    one_token = llama8b.cost(500, 1)
    assert one_token.decode_gpu_s == 0.0
    assert one_token.request_class == "prefill-heavy"


def test_a_prefill_pass_is_shared_by_the_prompts_that_fill_its_token_budget(llama8b):
    short = llama8b.cost(100, 1).prefill_gpu_s
    assert short == pytest.approx(llama8b.perf.prefill_time_s([100] * 81) / 81)  # 81 x 100 <= 8192
    assert short < llama8b.perf.prefill_time_s([100]) / 5


def test_a_decode_step_is_shared_by_the_batch_the_tpot_target_allows(llama8b):
    loose = PhaseCostModel.for_service("llama-3.1-8b", 0.2)
    tight = PhaseCostModel.for_service("llama-3.1-8b", 0.02)
    assert tight.decode_batch(1050) < llama8b.decode_batch(1050) <= loose.decode_batch(1050)
    assert tight.cost(1000, 100).decode_gpu_s > llama8b.cost(1000, 100).decode_gpu_s


def test_gpu_seconds_count_every_gpu_of_the_tp_group():
    tp2 = PhaseCostModel.for_service("llama-3.1-70b", 0.1)  # does not fit one H100
    tp4 = PhaseCostModel.for_service("llama-3.1-70b", 0.1, tp=4)
    assert tp2.tp == 2
    assert tp4.cost(2000, 2).prefill_gpu_s > tp2.cost(2000, 2).prefill_gpu_s


def test_costs_of_many_match_the_cost_of_each(llama8b):
    records = [
        TraceRecord(arrival_s=float(i), prompt_tokens=100 + 37 * i, output_tokens=1 + 11 * i)
        for i in range(50)
    ]
    costs = llama8b.costs(records)
    for record, prefill, decode in zip(records, costs.prefill_gpu_s, costs.decode_gpu_s, strict=True):
        single = llama8b.cost(record.prompt_tokens, record.output_tokens)
        assert (prefill, decode) == (single.prefill_gpu_s, single.decode_gpu_s)
    assert costs.request_classes == [
        llama8b.cost(r.prompt_tokens, r.output_tokens).request_class for r in records
    ]


def test_twenty_thousand_requests_cost_well_under_a_second(llama8b):
    rng = np.random.default_rng(0)
    prompt = rng.integers(1, 8000, 20_000)
    output = rng.integers(1, 1000, 20_000)
    started = time.perf_counter()
    costs = llama8b.costs_of(prompt, output)
    assert time.perf_counter() - started < 0.5
    assert len(costs) == 20_000


def test_an_unknown_model_or_tier_is_a_clear_error():
    with pytest.raises(UnknownModelError, match=r"unknown model 'gpt-9'; known models: .*llama-3\.1-8b"):
        PhaseCostModel.for_service("gpt-9", 0.1)
    with pytest.raises(UnknownTierError, match="unknown GPU tier 'TPU-v9'"):
        PhaseCostModel.for_service("llama-3.1-8b", 0.1, tier="TPU-v9")


def test_a_model_that_fits_at_no_tp_says_why():
    with pytest.raises(
        ConfigurationError, match=r"bloom-176b runs on L4-24GB at no TP .*TP8: .*does not fit"
    ):
        PhaseCostModel.for_service("bloom-176b", 0.1, tier="L4-24GB")


@pytest.mark.parametrize("tpot_s", [0.0, -1.0, float("inf")])
def test_it_rejects_a_tpot_that_is_not_a_positive_time(tpot_s):
    with pytest.raises(ProfilerError, match="tpot_slo_s"):
        PhaseCostModel.for_service("llama-3.1-8b", tpot_s)


def test_it_rejects_more_cached_tokens_than_the_prompt_holds(llama8b):
    with pytest.raises(ProfilerError, match="1200 cached prompt tokens exceed its 1000 prompt tokens"):
        llama8b.cost(1000, 10, cached_prompt_tokens=1200)
    with pytest.raises(ProfilerError, match="prompt_tokens must be >= 0"):
        llama8b.cost(-5, 10)


def test_no_records_cost_nothing(llama8b):
    costs = llama8b.costs([])
    assert len(costs) == 0
    assert costs.request_classes == []
