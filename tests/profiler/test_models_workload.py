"""The workload model: a window's class with a confidence, the next window's forecast, and its JSON."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from profiler.features import PhaseCostModel, WindowProfile, window_profiles
from profiler.models import ModelFormatError, WorkloadModel, classify_window, train_workload
from profiler.models.workload import PERSISTENCE, Smoothing, class_probability
from profiler.traces import read_trace

AZURE = Path(__file__).resolve().parents[2] / "data" / "traces" / "azure_llm_2023"


def window(
    share: float | None, *, se: float | None = 0.01, rate: float | None = 5.0, start: float = 0.0
) -> WindowProfile:
    """A window of a given prefill share, with GPU totals that pool to that share."""
    workload_class = None
    if share is not None:
        from profiler.features import classify_share

        workload_class = classify_share(share)
    count = 0 if share is None else 100
    return WindowProfile(
        start_s=start, end_s=start + 60.0, request_count=count, arrival_rate_rps=rate, burstiness_cv=None,
        prompt_tokens_p50=None, prompt_tokens_p90=None, prompt_tokens_p99=None, output_tokens_p50=None,
        output_tokens_p90=None, output_tokens_p99=None, prefix_cache_share=None, prefill_share=share,
        workload_class=workload_class, class_mix={}, prefill_gpu_s=share or 0.0, decode_gpu_s=1.0 - (share or 0.0),
        prefill_share_se=se if share is not None else None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def azure_windows() -> dict[str, list[WindowProfile]]:
    cost_model = PhaseCostModel.for_service("llama-3.1-8b", 0.1)
    return {
        name: window_profiles(
            read_trace(AZURE / f"AzureLLMInferenceTrace_{name}.csv", "azure"), cost_model, 60.0
        )
        for name in ("code", "conv")
    }


def test_a_window_far_from_the_thresholds_is_sure_and_one_on_a_threshold_is_a_coin_toss():
    assert classify_window(window(0.85)) == ("prefill-heavy", pytest.approx(1.0))
    on_threshold = classify_window(window(0.6))
    assert on_threshold[0] == "prefill-heavy"
    assert on_threshold[1] == pytest.approx(0.5)
    assert classify_window(window(0.45, se=0.05))[1] < classify_window(window(0.5, se=0.05))[1]


def test_a_window_of_few_requests_is_never_sure():
    assert classify_window(window(0.9, se=None)) == ("prefill-heavy", pytest.approx(1 / 3))
    assert classify_window(window(None)) == (None, 0.0)


def test_class_probabilities_sum_to_one():
    total = sum(class_probability(0.55, 0.08, name) for name in ("prefill-heavy", "balanced", "decode-heavy"))
    assert total == pytest.approx(1.0)


def test_persistence_forecasts_the_last_value_and_smoothing_follows_a_trend():
    assert PERSISTENCE.one_step([0.2, None, 0.5])[-1] == 0.5
    trending = Smoothing(alpha=0.5, beta=0.5, phi=1.0).one_step([0.1, 0.2, 0.3, 0.4, 0.5])
    assert trending[-1] == pytest.approx(0.6, abs=0.05)
    assert trending[0] is None


def test_it_forecasts_the_next_windows_class_and_rate():
    model = WorkloadModel.persistence()
    forecast = model.forecast([window(0.3, rate=2.0), window(0.7, rate=4.0)])
    assert (forecast.next_class, forecast.prefill_share, forecast.arrival_rate_rps) == (
        "prefill-heavy",
        0.7,
        4.0,
    )
    assert forecast.confidence > 0.99
    empty = model.forecast([])
    assert (empty.next_class, empty.confidence) == (None, 0.0)


def test_training_on_azure_reports_the_model_against_persistence(azure_windows):
    doc, report = train_workload(azure_windows)
    model = WorkloadModel.from_json(json.loads(json.dumps(doc)))
    for name in ("model", "persistence"):
        scored = report.metrics[name]
        # every test window that holds requests (the code trace has a few empty minutes)
        assert scored["windows"] == 30
        assert scored["share_mae"] < 0.1
        assert scored["rate_mae_rps"] is not None
    assert report.metrics["model"]["share_mae"] < report.metrics["persistence"]["share_mae"]
    assert doc["trained_on"]["windows"] == report.train_windows + report.test_windows == 58 + 59
    assert model.forecast(azure_windows["code"]).next_class == "prefill-heavy"
    assert model.forecast(azure_windows["conv"]).next_class == "decode-heavy"


def test_too_few_windows_to_train_is_a_clear_error():
    with pytest.raises(ValueError, match="needs at least 6 windows, got 2"):
        train_workload([window(0.5), window(0.5)])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(kind="admission"), "field 'kind' must be 'workload'"),
        (
            lambda d: d["thresholds"].update(prefill_heavy_at=0.7),
            "trained with thresholds.prefill_heavy_at = 0.7",
        ),
        (lambda d: d["forecaster"]["share"].update(alpha=3), r"forecaster.share.alpha must be in \[0, 1\]"),
        (lambda d: d["forecaster"].pop("rate"), "forecaster.rate must be an object"),
        (lambda d: d["forecaster"].update(share_error_sd="x"), "share_error_sd must be a finite number"),
    ],
)
def test_a_malformed_workload_model_names_what_is_wrong(change, message):
    doc, _ = train_workload([window(0.3 + 0.01 * i, start=60.0 * i) for i in range(10)])
    bad = copy.deepcopy(doc)
    change(bad)
    with pytest.raises(ModelFormatError, match=message):
        WorkloadModel.from_json(bad)
