"""Drift detection for scheduled rebalancing: class and rate changes against the plan's profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.errors import ProfilerError
from profiler.features import PhaseCostModel, WindowProfile, classify_share, window_profiles
from profiler.models import WorkloadModel, detect_drift
from profiler.models.drift import pool
from profiler.traces import read_trace

CONV = (
    Path(__file__).resolve().parents[2]
    / "data"
    / "traces"
    / "azure_llm_2023"
    / "AzureLLMInferenceTrace_conv.csv"
)


def window(share: float, *, se: float | None = 0.005, rate: float = 5.0, start: float = 0.0) -> WindowProfile:
    return WindowProfile(
        start_s=start, end_s=start + 300.0, request_count=100, arrival_rate_rps=rate, burstiness_cv=None,
        prompt_tokens_p50=None, prompt_tokens_p90=None, prompt_tokens_p99=None, output_tokens_p50=None,
        output_tokens_p90=None, output_tokens_p99=None, prefix_cache_share=None, prefill_share=share,
        workload_class=classify_share(share), class_mix={}, prefill_gpu_s=share, decode_gpu_s=1.0 - share,
        prefill_share_se=se,
    )  # fmt: skip


@pytest.fixture(scope="module")
def conv_windows() -> list[WindowProfile]:
    return window_profiles(read_trace(CONV, "azure"), PhaseCostModel.for_service("llama-3.1-8b", 0.1))


def test_the_conversation_trace_drifts_to_balanced_in_its_busiest_window(conv_windows):
    drift = detect_drift(conv_windows[:6], recent=1)
    assert drift.changed
    assert (drift.from_class, drift.to_class) == ("decode-heavy", "balanced")
    assert drift.rate_change == pytest.approx(0.42, abs=0.01)
    assert "decode-heavy -> balanced" in drift.reason
    assert "+42%" in drift.reason


def test_a_steady_workload_has_not_drifted(conv_windows):
    drift = detect_drift(conv_windows[:4], recent=1)
    assert not drift.changed
    assert drift.reason.startswith("steady: decode-heavy")


def test_a_class_change_it_is_unsure_of_is_not_drift():
    history = [window(0.3, start=300.0 * i) for i in range(4)] + [window(0.41, se=0.05, start=1200.0)]
    drift = detect_drift(history, recent=1)
    assert not drift.changed
    assert drift.to_class == "balanced"
    assert "may be moving to balanced" in drift.reason


def test_it_compares_with_the_profile_the_plan_was_made_for():
    planned_for = window(0.8, rate=5.0)
    drift = detect_drift([window(0.25, start=300.0 * i) for i in range(3)], baseline=planned_for)
    assert drift.changed
    assert (drift.from_class, drift.to_class) == ("prefill-heavy", "decode-heavy")


def test_a_rate_change_beyond_the_tolerance_is_drift_even_in_the_same_class():
    history = [window(0.3, rate=5.0, start=300.0 * i) for i in range(4)] + [
        window(0.3, rate=2.0, start=1200.0)
    ]
    drift = detect_drift(history, recent=1)
    assert drift.changed
    assert drift.to_class == drift.from_class
    assert drift.rate_change == pytest.approx(-0.6)
    assert not detect_drift(history, recent=1, rate_tolerance=0.7).changed


def test_with_a_model_it_judges_by_the_forecast_of_the_next_window():
    history = [window(0.3, start=300.0 * i) for i in range(4)] + [window(0.7, start=1200.0)]
    drift = detect_drift(history, model=WorkloadModel.persistence(), recent=1)
    assert drift.changed
    assert drift.to_class == "prefill-heavy"
    assert "forecast of the next window" in drift.reason


def test_too_little_history_is_not_drift():
    drift = detect_drift([window(0.3)], recent=3)
    assert not drift.changed
    assert "not enough history" in drift.reason


def test_pooling_weighs_windows_by_their_gpu_time():
    pooled = pool([window(0.2), window(0.8)])
    assert pooled.prefill_share == pytest.approx(0.5)
    assert pooled.arrival_rate_rps == pytest.approx(5.0)
    assert pooled.request_count == 200


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"recent": 0}, "recent must be >= 1"),
        ({"min_confidence": 2.0}, "min_confidence"),
        ({"rate_tolerance": -1}, "rate_tolerance"),
    ],
)
def test_it_rejects_bad_settings(kwargs, message):
    with pytest.raises(ProfilerError, match=message):
        detect_drift([window(0.3)] * 5, **kwargs)
