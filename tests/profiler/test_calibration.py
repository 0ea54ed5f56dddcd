"""The committed efficiency factors against the published reference points (data/reference/)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from profiler.calibration import (
    calibration_points,
    error_summary,
    evaluate,
    evaluate_power,
    load_power_points,
    load_reference_points,
    power_errors,
)
from profiler.errors import TraceError
from profiler.perfmodel import PerfModel


def llama70(tier_name: str, tp: int) -> PerfModel:
    return PerfModel.for_names("llama-2-70b", tier_name, tp=tp, dtype="fp16")


def test_the_committed_factors_hold_the_reference_points() -> None:
    used, _ = calibration_points(load_reference_points())
    summary = error_summary(evaluate(used))
    assert summary["points"] >= 280
    assert summary["median_abs_error"] <= 0.10
    assert summary["max_abs_error"] <= 0.25


def test_few_points_are_excluded_and_each_says_why() -> None:
    points = load_reference_points()
    used, excluded = calibration_points(points)
    assert len(points) == 288
    assert len(used) + len(excluded) == 288
    assert len(excluded) <= 5
    assert all(item.reason for item in excluded)
    described = {item.point.describe() for item in excluded}
    assert "splitwise llama-2-70b A100-SXM-80GB TP2 prefill 64x512" in described


def test_opt_13b_on_one_a100_matches_distserve() -> None:
    worker = PerfModel.for_names("opt-13b", "A100-SXM-80GB", tp=1, dtype="fp16", engine="distserve")
    assert 0.066 <= worker.prefill_time_s([512]) <= 0.072
    assert worker.decode_step_s(1, 512) == pytest.approx(0.020, rel=0.05)


def test_llama_2_70b_tp8_prompt_2048_matches_splitwise_on_h100_and_a100() -> None:
    assert llama70("H100-SXM-80GB", 8).prefill_time_s([2048]) == pytest.approx(0.137, rel=0.10)
    assert llama70("A100-SXM-80GB", 8).prefill_time_s([2048]) == pytest.approx(0.274, rel=0.10)


def test_h100_beats_a100_by_about_the_measured_factor() -> None:
    # Measured (Splitwise, Llama-2-70B TP8): prefill 2048 274.22 / 136.80 = 2.0; decode 44.85 / 29.76 = 1.5.
    prefill = llama70("A100-SXM-80GB", 8).prefill_time_s([2048]) / llama70("H100-SXM-80GB", 8).prefill_time_s(
        [2048]
    )
    decode = llama70("A100-SXM-80GB", 8).decode_step_s(1, 576) / llama70("H100-SXM-80GB", 8).decode_step_s(
        1, 576
    )
    assert prefill == pytest.approx(274.22 / 136.80, rel=0.20)
    assert decode == pytest.approx(44.85 / 29.76, rel=0.20)


def test_tp_scaling_is_sublinear_as_measured() -> None:
    # Measured A100 prefill 2048: TP2 688.05 ms, TP8 274.22 ms (2.5x for 4x the GPUs);
    # decode batch 1 barely moves: 54.86 ms at TP2, 44.85 ms at TP8.
    tp2, tp8 = llama70("A100-SXM-80GB", 2), llama70("A100-SXM-80GB", 8)
    speedup = tp2.prefill_time_s([2048]) / tp8.prefill_time_s([2048])
    assert 1 < speedup < 4
    assert speedup == pytest.approx(688.05 / 274.22, rel=0.20)
    assert tp2.decode_step_s(1, 576) / tp8.decode_step_s(1, 576) == pytest.approx(54.86 / 44.85, rel=0.15)


def test_short_prompts_cost_more_per_token_than_long_ones() -> None:
    worker = llama70("H100-SXM-80GB", 4)
    assert worker.prefill_time_s([128]) / 128 > 3 * worker.prefill_time_s([2048]) / 2048


def test_power_follows_the_measured_a100_points() -> None:
    errors = [abs(error) for error in power_errors(evaluate_power(load_power_points()))]
    assert statistics.median(errors) <= 0.08
    assert max(errors) <= 0.40  # the worst: BLOOM's 8,192-token request averages 0.54 of TDP, we say 0.73


def test_reading_a_bad_reference_row_names_the_file_line_and_field(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "data" / "reference" / "gpu_points.csv"
    header, first = source.read_text().splitlines()[:2]
    broken = tmp_path / "points.csv"
    broken.write_text(f"{header}\n{first}\n{first.replace(',81.08,', ',fast,')}\n")
    with pytest.raises(TraceError, match=r"points\.csv:3: field 'latency_ms' is not a number"):
        load_reference_points(broken)


def test_the_calibration_script_reproduces_the_committed_factors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import calibrate_perfmodel

    result = calibrate_perfmodel.main(["--json", "--results-dir", str(tmp_path)])
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last_line) == result
    assert json.loads((tmp_path / "calibrate_perfmodel.json").read_text()) == result
    assert result["bench"] == "calibrate_perfmodel"
    assert result["median_abs_error"] == pytest.approx(result["committed_median_abs_error"], abs=0.005)
    assert result["max_abs_error"] == pytest.approx(result["committed_max_abs_error"], abs=0.01)
