"""The perf model's physics: memory, validation, rooflines, TP, links and power."""

from __future__ import annotations

import time

import pytest

from profiler.catalog import MODELS, TIERS, model, tier
from profiler.errors import ConfigurationError, ProfilerError, UnknownTierError
from profiler.perfmodel import (
    GPU_MEMORY_UTILIZATION,
    LINKS,
    Efficiency,
    Link,
    PerfModel,
    default_efficiency,
    layer_matmul_params,
)

# Efficiency without overheads or communication costs, so a test sees the roofline alone.
BARE = Efficiency(mfu=0.5, mbu=0.8, prefill_overhead_s=0.0, decode_overhead_s=0.0)


def perf(model_name: str, tier_name: str, tp: int = 1, **kwargs: object) -> PerfModel:
    return PerfModel(model=model(model_name), tier=tier(tier_name), tp=tp, **kwargs)  # type: ignore[arg-type]


def test_kv_bytes_per_token_follows_layers_kv_heads_and_dtype() -> None:
    llama3 = perf("llama-3.1-8b", "H100-SXM-80GB")
    assert llama3.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2
    assert perf("llama-3.1-8b", "H100-SXM-80GB", kv_dtype="fp8").kv_bytes_per_token == 2 * 32 * 8 * 128
    assert perf("llama-2-7b", "H100-SXM-80GB").kv_bytes_per_token == 4 * llama3.kv_bytes_per_token


def test_weights_follow_params_dtype_and_tp() -> None:
    bf16 = perf("llama-3.1-70b", "H100-SXM-80GB", tp=4)
    fp8 = perf("llama-3.1-70b", "H100-SXM-80GB", tp=4, dtype="fp8")
    assert bf16.weight_bytes == pytest.approx(70.6e9 * 2)
    assert fp8.weight_bytes == pytest.approx(70.6e9)
    assert bf16.weight_bytes_per_gpu == pytest.approx(bf16.weight_bytes / 4)


def test_layer_matmul_params_leave_out_the_embeddings() -> None:
    # Llama-3.1-8B: 32 layers of (q,k,v,o) 4096*128*(2*32 + 2*8) and a gated MLP of 3*4096*14336.
    assert layer_matmul_params(model("llama-3.1-8b")) == 32 * (4096 * 128 * 80 + 3 * 4096 * 14336)
    # OPT-13B: MHA and a two-matrix MLP; the rest of its 12.85 B is one tied embedding table.
    assert layer_matmul_params(model("opt-13b")) == 40 * (4 * 5120 * 5120 + 2 * 5120 * 20480)


def test_it_rejects_a_tp_that_does_not_divide_the_heads() -> None:
    with pytest.raises(ConfigurationError, match="does not divide the 32 attention heads"):
        perf("llama-3.1-8b", "H100-SXM-80GB", tp=3)


def test_it_rejects_a_tp_that_neither_divides_nor_multiplies_the_kv_heads() -> None:
    with pytest.raises(ConfigurationError, match="8 KV heads"):
        perf("qwen2.5-32b", "H100-SXM-80GB", tp=5)


def test_it_replicates_kv_heads_when_tp_exceeds_them() -> None:
    tp8 = perf("llama-3.1-70b", "H100-SXM-80GB", tp=8)
    tp16 = perf("llama-3.1-70b", "H100-SXM-80GB", tp=16)
    assert tp16.kv_bytes_per_token == tp8.kv_bytes_per_token
    assert tp16.kv_bytes_per_token_per_gpu == tp8.kv_bytes_per_token_per_gpu


def test_it_rejects_an_unknown_dtype_or_a_tp_below_one() -> None:
    with pytest.raises(ConfigurationError, match="int4"):
        perf("llama-3.1-8b", "H100-SXM-80GB", dtype="int4")
    with pytest.raises(ConfigurationError, match="tp must be >= 1"):
        perf("llama-3.1-8b", "H100-SXM-80GB", tp=0)


def test_a_model_that_does_not_fit_names_the_shortfall() -> None:
    with pytest.raises(ConfigurationError) as raised:
        perf("llama-3.1-70b", "L4-24GB", tp=1)
    message = str(raised.value)
    assert "llama-3.1-70b on L4-24GB at TP1" in message
    assert "short by 1" in message  # 141.2 GB of weights against 21.6 GB usable: ~122 GB short


def test_kv_capacity_is_what_weights_and_the_reserve_leave_of_the_usable_memory() -> None:
    worker = perf("llama-3.1-8b", "H100-SXM-80GB")
    used = worker.weight_bytes_per_gpu + worker.reserved_bytes_per_gpu
    used += worker.kv_capacity_tokens * worker.kv_bytes_per_token_per_gpu
    usable = worker.tier.memory_bytes * GPU_MEMORY_UTILIZATION
    assert usable - worker.kv_bytes_per_token_per_gpu < used <= usable
    assert (
        perf("llama-3.1-8b", "H100-SXM-80GB", kv_dtype="fp8").kv_capacity_tokens
        > 1.9 * worker.kv_capacity_tokens
    )


def test_prefill_is_compute_bound_and_reads_the_weights_at_least_once() -> None:
    worker = perf("llama-3.1-8b", "H100-SXM-80GB", efficiency=BARE)
    weight_read_s = worker.weight_bytes / (worker.tier.hbm_bytes_per_s * BARE.mbu)
    assert worker.prefill_time_s([1]) == pytest.approx(weight_read_s, rel=0.01)
    flops = 2 * layer_matmul_params(worker.model) * 4096
    assert worker.prefill_time_s([4096]) > flops / (worker.tier.peak_flops("bf16") * BARE.mfu)


def test_prefill_attention_grows_with_the_square_of_each_prompt() -> None:
    worker = perf("llama-3.1-8b", "H100-SXM-80GB")
    assert worker.prefill_time_s([8192]) > worker.prefill_time_s([1024] * 8)


def test_prefill_from_sums_matches_prefill_of_the_prompts() -> None:
    worker = perf("mistral-7b", "A100-SXM-80GB")
    prompts = [100, 2000, 37]
    fast = worker.prefill_time_from_sums_s(sum(prompts), float(sum(p * p for p in prompts)), len(prompts))
    assert fast == worker.prefill_time_s(prompts)


def test_fp8_uses_the_tiers_fp8_peak() -> None:
    def long_prefill(tier_name: str, dtype: str) -> float:
        return perf("llama-3.1-8b", tier_name, dtype=dtype, efficiency=BARE).prefill_time_s([8192])

    assert long_prefill("H100-SXM-80GB", "fp8") / long_prefill("H100-SXM-80GB", "bf16") == pytest.approx(
        0.5, rel=0.01
    )
    # A100 has no FP8 units: FP8 weights halve the bytes but not the FLOP time.
    assert long_prefill("A100-SXM-80GB", "fp8") == pytest.approx(
        long_prefill("A100-SXM-80GB", "bf16"), rel=0.01
    )


def test_decode_is_bandwidth_bound_at_small_batches() -> None:
    worker = perf("llama-3.1-8b", "H100-SXM-80GB", efficiency=BARE)
    weight_read_s = worker.weight_bytes / (worker.tier.hbm_bytes_per_s * BARE.mbu)
    assert worker.decode_step_s(1, 1) == pytest.approx(weight_read_s, rel=0.001)
    assert worker.decode_step_s(8, 8) == pytest.approx(weight_read_s, rel=0.001)
    # Each context token's KV is read once per step.
    kv_read_s = 100_000 * worker.kv_bytes_per_token / (worker.tier.hbm_bytes_per_s * BARE.mbu)
    assert worker.decode_step_s(8, 100_000) == pytest.approx(weight_read_s + kv_read_s, rel=0.001)


def test_decode_turns_compute_bound_past_the_ridge() -> None:
    worker = perf("llama-3.1-8b", "H100-SXM-80GB", efficiency=BARE)
    # Ridge: peak * mfu / (bandwidth * mbu) = 989e12 * 0.5 / (3.35e12 * 0.8), about 185 sequences.
    assert worker.decode_step_s(64, 64) == pytest.approx(worker.decode_step_s(32, 32), rel=0.001)
    assert worker.decode_step_s(4096, 4096) / worker.decode_step_s(2048, 2048) == pytest.approx(2.0, rel=0.01)


def test_tp_splits_the_work_but_adds_all_reduces() -> None:
    times = [perf("qwen2.5-32b", "H100-SXM-80GB", tp=tp).prefill_time_s([2048]) for tp in (2, 4, 8)]
    assert times[0] > times[1] > times[2]
    assert times[1] > times[0] / 2
    assert times[2] > times[1] / 2
    decode = [perf("qwen2.5-32b", "H100-SXM-80GB", tp=tp).decode_step_s(1, 1024) for tp in (2, 8)]
    assert decode[1] > decode[0] / 4


def test_all_reduces_slow_down_per_token_once_their_payload_reaches_the_switch_size() -> None:
    worker = perf("llama-2-70b", "H100-SXM-80GB", tp=8, dtype="fp16")
    per_token_below = worker.prefill_time_s([4095]) - worker.prefill_time_s([4094])
    per_token_above = worker.prefill_time_s([4097]) - worker.prefill_time_s([4096])
    assert per_token_above > per_token_below


def test_a_mixed_step_costs_more_than_either_part_and_less_than_both_apart() -> None:
    worker = perf("llama-3.1-8b", "A100-SXM-80GB")
    prefill = worker.prefill_time_from_sums_s(512, 512.0 * 512)
    decode = worker.decode_step_s(32, 32 * 2000)
    mixed = worker.mixed_step_s(512, 512.0 * 512, 32, 32 * 2000)
    assert max(prefill, decode) < mixed < prefill + decode
    assert worker.mixed_step_s(0, 0.0, 32, 32 * 2000) == decode


def test_empty_steps_take_no_time_and_negative_prompts_are_refused() -> None:
    worker = perf("llama-3.1-8b", "A100-SXM-80GB")
    assert worker.decode_step_s(0, 0) == 0.0
    assert worker.prefill_time_s([]) == 0.0
    with pytest.raises(ProfilerError, match="prompt length"):
        worker.prefill_time_s([10, -1])


def test_kv_transfer_is_faster_over_nvlink_than_pcie() -> None:
    worker = perf("llama-3.1-8b", "H100-SXM-80GB")
    nvlink, pcie = worker.kv_transfer_s(4096, "nvlink"), worker.kv_transfer_s(4096, "pcie")
    assert nvlink < worker.kv_transfer_s(4096, "infiniband") < pcie < worker.kv_transfer_s(4096, "ethernet")
    assert pcie == pytest.approx(LINKS["pcie"].latency_s + 4096 * worker.kv_bytes_per_token / 32e9)
    assert worker.kv_transfer_s(0, "pcie") == 0.0


def test_nvlink_means_the_tiers_own_scale_up_link() -> None:
    h100 = perf("llama-3.1-8b", "H100-SXM-80GB").kv_transfer_s(4096)
    a100 = perf("llama-3.1-8b", "A100-SXM-80GB").kv_transfer_s(4096)
    assert a100 / h100 == pytest.approx(450 / 300, rel=0.01)
    custom = Link("rdma-800", 100.0, 0.0)
    assert perf("llama-3.1-8b", "H100-SXM-80GB").kv_transfer_s(4096, custom) == pytest.approx(
        h100 * 4.5, rel=0.01
    )
    with pytest.raises(ConfigurationError, match="unknown link"):
        perf("llama-3.1-8b", "H100-SXM-80GB").kv_transfer_s(10, "carrier-pigeon")


def test_max_decode_batch_meets_the_tpot_and_the_kv_capacity() -> None:
    worker = perf("llama-3.1-8b", "H100-SXM-80GB")
    batch = worker.max_decode_batch(0.030, 2048)
    assert batch > 1
    assert (
        worker.decode_step_s(batch, batch * 2048)
        <= 0.030
        < worker.decode_step_s(batch + 1, (batch + 1) * 2048)
    )
    assert worker.max_decode_batch(worker.decode_step_s(1, 2048) / 2, 2048) == 0
    huge_context = worker.kv_capacity_tokens // 3
    assert worker.max_decode_batch(10.0, huge_context) == 3


def test_power_stays_between_idle_and_tdp() -> None:
    for tier_name, gpu in TIERS.items():
        worker = perf("llama-3.1-8b", tier_name)
        assert worker.power_w("idle", 1.0) == gpu.idle_w
        assert worker.power_w("decode", 0.0, 8) == gpu.idle_w
        for phase in ("prefill", "decode"):
            for batch in (1, 16, 256):
                for utilization in (0.25, 1.0):
                    assert gpu.idle_w <= worker.power_w(phase, utilization, batch) <= gpu.tdp_w


def test_power_is_higher_in_prefill_than_in_decode_and_falls_with_tp() -> None:
    def power(tp: int, phase: str) -> float:
        return perf("llama-2-70b", "A100-SXM-80GB", tp=tp, dtype="fp16").power_w(
            phase, 1.0, 1, tokens_per_seq=2048
        )

    assert power(2, "prefill") > power(2, "decode")
    assert power(2, "decode") > power(4, "decode") > power(8, "decode")
    with pytest.raises(ProfilerError, match="utilization"):
        perf("llama-3.1-8b", "A100-SXM-80GB").power_w("decode", 1.5)
    with pytest.raises(ProfilerError, match="unknown phase"):
        perf("llama-3.1-8b", "A100-SXM-80GB").power_w("training", 1.0)


def test_tiers_without_reference_points_borrow_the_nearest_calibrated_factors() -> None:
    assert default_efficiency("H200-SXM-141GB") == default_efficiency("H100-SXM-80GB")
    assert default_efficiency("L4-24GB") == default_efficiency("A100-SXM-80GB")
    derived = default_efficiency("H100-SXM-80GB", "distserve")
    assert derived != default_efficiency("H100-SXM-80GB")
    assert 0 < derived.mfu <= 1
    with pytest.raises(UnknownTierError):
        default_efficiency("TPU-v5")
    with pytest.raises(ConfigurationError, match="unknown engine"):
        default_efficiency("H100-SXM-80GB", "tensorrt")


def test_for_names_uses_the_engines_calibrated_factors() -> None:
    worker = PerfModel.for_names("opt-13b", "A100-SXM-80GB", tp=1, dtype="fp16", engine="distserve")
    assert worker.factors == default_efficiency("A100-SXM-80GB", "distserve")
    assert PerfModel.for_names("llama-3.1-8b", "H100-SXM-80GB") == perf("llama-3.1-8b", "H100-SXM-80GB")


def test_efficiency_refuses_shares_outside_zero_to_one() -> None:
    with pytest.raises(ConfigurationError, match="mfu"):
        Efficiency(mfu=1.2, mbu=0.8, prefill_overhead_s=0.0, decode_overhead_s=0.0)
    with pytest.raises(ConfigurationError, match="decode_overhead_s"):
        Efficiency(mfu=0.5, mbu=0.8, prefill_overhead_s=0.0, decode_overhead_s=-1.0)


def test_every_catalog_model_fits_somewhere_and_steps_in_positive_time() -> None:
    for name in MODELS:
        worker = perf(name, "MI300X-192GB", tp=8 if name == "bloom-176b" else 1)
        assert worker.kv_capacity_tokens > 0
        assert worker.decode_step_s(4, 4000) > 0
        assert worker.prefill_time_s([300]) > 0


def test_decode_step_is_cheap_enough_for_a_simulator() -> None:
    worker = perf("llama-3.1-70b", "H100-SXM-80GB", tp=4)
    started = time.perf_counter()
    for batch in range(1, 20_001):
        worker.decode_step_s(batch % 256 + 1, batch * 100)
    assert time.perf_counter() - started < 0.5  # about 10 ms; a generous bound for a loaded CI box
