"""Engines' /metrics texts read into one shape; rates and percentiles from two scrapes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agents.engines import launcher
from agents.engines.metrics import Histogram, MetricsError, WorkerMetrics, histogram_quantile, rates_between

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_vllm_v1_metrics_read_into_worker_metrics() -> None:
    metrics = launcher("vllm").parse_metrics(fixture("vllm_v1.txt"))
    assert metrics.requests_running == 37
    assert metrics.requests_waiting == 4
    assert metrics.kv_cache_usage == pytest.approx(0.4182)
    assert metrics.prompt_tokens_total == 3_918_976
    assert metrics.generation_tokens_total == 512_811
    assert metrics.requests_finished_total == 1788 + 2011 + 3  # every finished_reason
    assert metrics.ttft_seconds.count == 3802
    assert metrics.ttft_seconds.sum == pytest.approx(271.3348)
    assert metrics.ttft_seconds.bounds[0] == 0.001
    assert math.isinf(metrics.ttft_seconds.bounds[-1])
    # Rank 1,901 of 3,802 falls in (0.04, 0.06], which holds ranks 1,803..2,713.
    assert metrics.ttft_seconds.quantile(0.5) == pytest.approx(0.04 + 0.02 * (1901 - 1802) / 911)
    # The inter-token histogram, not the ITL's older name.
    assert metrics.itl_seconds.count == 508_811
    assert 0.01 < (metrics.itl_seconds.quantile(0.5) or 0) < 0.025
    assert metrics.sim is None


def test_older_vllm_names_still_read() -> None:
    metrics = launcher("vllm").parse_metrics(fixture("vllm_v0.txt"))
    assert metrics.kv_cache_usage == pytest.approx(0.0731)  # gpu_cache_usage_perc
    assert metrics.itl_seconds.count == 40_886  # time_per_output_token_seconds
    assert metrics.requests_running == 12


def test_sglang_metrics_read_into_the_same_shape() -> None:
    metrics = launcher("sglang").parse_metrics(fixture("sglang.txt"))
    assert metrics.requests_running == 162
    assert metrics.requests_waiting == 2826
    assert metrics.kv_cache_usage == pytest.approx(0.28)
    assert metrics.prompt_tokens_total == 8_128_902
    assert metrics.generation_tokens_total == 7_557_572
    assert metrics.requests_finished_total == 11_008
    assert metrics.ttft_seconds.count == 11_008
    # Rank 5,504 falls in (2, 4], which holds ranks 4,570..6,657.
    assert metrics.ttft_seconds.quantile(0.5) == pytest.approx(2.0 + 2.0 * (5504 - 4569) / 2088)
    # inter_token_latency_seconds wins over the per-request time_per_output_token_seconds.
    assert metrics.itl_seconds.bounds[0] == 0.002
    assert 0.035 < (metrics.itl_seconds.quantile(0.5) or 0) < 0.04


def test_sglang_without_inter_token_latency_falls_back_to_tpot_and_the_underscore_prefix() -> None:
    text = """# TYPE sglang_num_running_reqs gauge
sglang_num_running_reqs{model_name="m"} 3.0
# TYPE sglang_time_per_output_token_seconds histogram
sglang_time_per_output_token_seconds_bucket{le="0.01",model_name="m"} 1.0
sglang_time_per_output_token_seconds_bucket{le="0.02",model_name="m"} 3.0
sglang_time_per_output_token_seconds_bucket{le="+Inf",model_name="m"} 3.0
sglang_time_per_output_token_seconds_sum{model_name="m"} 0.04
sglang_time_per_output_token_seconds_count{model_name="m"} 3.0
"""
    metrics = launcher("sglang").parse_metrics(text)
    assert metrics.requests_running == 3
    assert metrics.itl_seconds.count == 3
    assert metrics.itl_seconds.quantile(0.5) == pytest.approx(0.01 + 0.01 * 0.5 / 2)


def test_several_engines_of_one_server_add_up_and_the_kv_usage_is_the_fullest() -> None:
    text = """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 4.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.7
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="m"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 2.0
vllm:time_to_first_token_seconds_bucket{engine="1",le="0.1",model_name="m"} 5.0
vllm:time_to_first_token_seconds_bucket{engine="1",le="+Inf",model_name="m"} 6.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 0.5
vllm:time_to_first_token_seconds_sum{engine="1",model_name="m"} 0.7
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 2.0
vllm:time_to_first_token_seconds_count{engine="1",model_name="m"} 6.0
"""
    metrics = launcher("vllm").parse_metrics(text)
    assert metrics.requests_running == 7
    assert metrics.kv_cache_usage == 0.7
    assert metrics.ttft_seconds == Histogram((0.1, math.inf), (6.0, 8.0), pytest.approx(1.2), 8.0)


def test_absent_metrics_read_as_zero() -> None:
    metrics = launcher("vllm").parse_metrics("")
    assert metrics == WorkerMetrics()
    assert metrics.ttft_seconds.quantile(0.9) is None


def test_unreadable_text_is_a_metrics_error() -> None:
    with pytest.raises(MetricsError):
        launcher("vllm").parse_metrics('vllm:num_requests_running{model_name="m" 3.0\n')


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.0, 0.0), (0.25, 0.05), (0.5, 0.1), (0.75, 0.15), (1.0, 0.2)],
)
def test_a_quantile_interpolates_inside_its_bucket(q: float, expected: float) -> None:
    assert histogram_quantile(q, (0.1, 0.2, math.inf), (2.0, 4.0, 4.0)) == pytest.approx(expected)


def test_a_quantile_in_the_infinite_bucket_is_the_largest_finite_bound() -> None:
    assert histogram_quantile(0.99, (0.1, 0.2, math.inf), (1.0, 2.0, 10.0)) == 0.2


def test_rates_and_percentiles_come_from_the_difference_of_two_scrapes() -> None:
    earlier = WorkerMetrics(
        prompt_tokens_total=1000,
        generation_tokens_total=500,
        requests_finished_total=10,
        ttft_seconds=Histogram((0.1, 1.0, math.inf), (10.0, 10.0, 10.0), 0.5, 10.0),
    )
    later = WorkerMetrics(
        prompt_tokens_total=3000,
        generation_tokens_total=1500,
        requests_finished_total=30,
        ttft_seconds=Histogram((0.1, 1.0, math.inf), (10.0, 30.0, 30.0), 10.5, 30.0),
    )
    rates = rates_between(earlier, later, 10.0)
    assert rates.prompt_tokens_per_s == 200.0
    assert rates.generation_tokens_per_s == 100.0
    assert rates.requests_per_s == 2.0
    # The 20 new TTFTs all lie in (0.1, 1]: the old fast ones do not pull the median down.
    assert rates.ttft_p50_s == pytest.approx(0.1 + 0.9 * 0.5)
    assert rates.ttft_p90_s == pytest.approx(0.1 + 0.9 * 0.9)
    assert rates.itl_p50_s is None
    assert rates.prefill_busy_share is None


def test_a_restarted_engine_counts_from_zero() -> None:
    earlier = WorkerMetrics(
        prompt_tokens_total=5000, ttft_seconds=Histogram((1.0, math.inf), (9.0, 9.0), 3.0, 9.0)
    )
    later = WorkerMetrics(
        prompt_tokens_total=400, ttft_seconds=Histogram((1.0, math.inf), (2.0, 2.0), 0.4, 2.0)
    )
    rates = rates_between(earlier, later, 4.0)
    assert rates.prompt_tokens_per_s == 100.0
    assert rates.ttft_p50_s == pytest.approx(0.5)


def test_rates_need_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        rates_between(WorkerMetrics(), WorkerMetrics(), 0.0)
