"""Windows and the overall profile: rates, burstiness, percentiles, prefix-cache share and the class."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.errors import ProfilerError
from profiler.features import CLASSES, PhaseCostModel, overall_profile, window_profiles
from profiler.traces import TraceRecord, read_trace

AZURE = Path(__file__).resolve().parents[2] / "data" / "traces" / "azure_llm_2023"


@pytest.fixture(scope="module")
def llama8b() -> PhaseCostModel:
    return PhaseCostModel.for_service("llama-3.1-8b", 0.1)


@pytest.fixture(scope="module")
def code() -> list[TraceRecord]:
    return list(read_trace(AZURE / "AzureLLMInferenceTrace_code.csv", "azure"))


@pytest.fixture(scope="module")
def conv() -> list[TraceRecord]:
    return list(read_trace(AZURE / "AzureLLMInferenceTrace_conv.csv", "azure"))


def record(arrival_s: float | None, prompt: int = 100, output: int = 10, cached: int = 0) -> TraceRecord:
    return TraceRecord(
        arrival_s=arrival_s, prompt_tokens=prompt, output_tokens=output, cached_prompt_tokens=cached
    )


def test_azure_code_is_prefill_heavy(code, llama8b):
    overall = overall_profile(code, llama8b)
    assert overall.workload_class == "prefill-heavy"
    assert overall.prefill_share == pytest.approx(0.841, abs=0.001)
    assert overall.class_mix["prefill-heavy"] == pytest.approx(6933 / 8819)


def test_azure_conv_is_decode_heavy_with_its_true_mix(conv, llama8b):
    overall = overall_profile(conv, llama8b)
    assert overall.workload_class == "decode-heavy"
    assert overall.prefill_share == pytest.approx(0.287, abs=0.001)
    # counted request by request under the perf model: 2,739 / 1,929 / 14,698 of 19,366
    assert overall.class_mix == pytest.approx(
        {"prefill-heavy": 2739 / 19366, "balanced": 1929 / 19366, "decode-heavy": 14698 / 19366}
    )
    assert overall.request_count == 19366
    assert overall.prompt_tokens_p50 == 1020.0
    assert overall.output_tokens_p50 == 129.0


def test_five_minute_windows_cover_the_hour(conv, llama8b):
    windows = window_profiles(conv, llama8b)
    assert [w.start_s for w in windows] == [300.0 * i for i in range(12)]
    assert sum(w.request_count for w in windows) == len(conv)
    assert windows[0].arrival_rate_rps == pytest.approx(windows[0].request_count / 300.0)
    # the busiest stretch of the conversation hour leans towards prefill
    assert windows[5].workload_class == "balanced"
    assert {w.workload_class for w in windows} <= set(CLASSES)
    assert all(sum(w.class_mix.values()) == pytest.approx(1.0) for w in windows)


def test_the_window_share_is_of_gpu_time_not_a_mean_of_request_shares(llama8b):
    records = [
        record(0.0, prompt=8000, output=2),
        record(1.0, prompt=50, output=900),
        record(2.0, prompt=60, output=800),
    ]
    (window,) = window_profiles(records, llama8b)
    costs = llama8b.costs(records)
    assert window.prefill_share == pytest.approx(
        costs.prefill_gpu_s.sum() / (costs.prefill_gpu_s + costs.decode_gpu_s).sum()
    )
    assert window.prefill_share != pytest.approx(costs.prefill_share.mean())
    assert window.prefill_gpu_s == pytest.approx(costs.prefill_gpu_s.sum())


def test_burstiness_is_the_cv_of_inter_arrivals(llama8b):
    steady = overall_profile([record(float(t)) for t in range(10)], llama8b)
    bursty = overall_profile([record(t) for t in (0.0, 0.1, 0.2, 5.0, 5.1, 5.2, 10.0)], llama8b)
    assert steady.burstiness_cv == pytest.approx(0.0)
    assert bursty.burstiness_cv > 1.0
    assert overall_profile([record(0.0), record(1.0)], llama8b).burstiness_cv is None


def test_prefix_cache_share_is_of_prompt_tokens(llama8b):
    profile = overall_profile([record(0.0, 1000, cached=600), record(1.0, 1000)], llama8b)
    assert profile.prefix_cache_share == pytest.approx(0.3)


def test_empty_windows_between_arrivals_are_kept_with_a_zero_rate(llama8b):
    windows = window_profiles([record(10.0), record(20.0), record(700.0)], llama8b, window_s=300.0)
    assert [w.request_count for w in windows] == [2, 0, 1]
    empty = windows[1]
    assert (empty.arrival_rate_rps, empty.workload_class, empty.prefill_share, empty.class_mix) == (
        0.0,
        None,
        None,
        {},
    )


def test_a_batch_trace_is_one_window_without_a_rate(llama8b):
    windows = window_profiles([record(None), record(None, 3000, 5)], llama8b)
    assert len(windows) == 1
    assert windows[0].arrival_rate_rps is None
    assert windows[0].request_count == 2
    assert overall_profile([record(None)], llama8b).arrival_rate_rps is None


def test_a_mix_of_timed_and_untimed_records_is_refused(llama8b):
    with pytest.raises(ProfilerError, match="1 of 2 records have no arrival_s"):
        window_profiles([record(None), record(1.0)], llama8b)


def test_no_records_give_no_windows_and_no_overall_profile(llama8b):
    assert window_profiles([], llama8b) == []
    with pytest.raises(ProfilerError, match="no records to profile"):
        overall_profile([], llama8b)


@pytest.mark.parametrize("window_s", [0.0, -5.0, float("nan")])
def test_it_rejects_a_window_that_is_not_a_positive_length(llama8b, window_s):
    with pytest.raises(ProfilerError, match="window_s"):
        window_profiles([record(0.0)], llama8b, window_s=window_s)


def test_a_profile_is_plain_data(llama8b):
    data = overall_profile([record(0.0), record(1.0)], llama8b).to_dict()
    assert data["request_count"] == 2
    assert set(data["class_mix"]) == set(CLASSES)
