"""Conservation on the real Azure conv hour: every request finishes exactly once, tokens in equal tokens
out, and Little's law holds between the event loop's count in the system and the requests' latencies."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from controlplane.planning.core.sim import ClusterSpec, PoolSpec, Slo, requests_from_trace, simulate
from profiler import catalog
from profiler.traces import read_trace

CONV = Path(__file__).resolve().parents[3] / "data/traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv"
MODEL = catalog.model("llama-3.1-8b")
REQUESTS = requests_from_trace(read_trace(CONV, "azure"), max_context=MODEL.max_context)
CLUSTERS = {
    "disaggregated": ClusterSpec(
        model=MODEL,
        pools=(
            PoolSpec.of("H100-SXM-80GB", role="prefill"),
            PoolSpec.of("A100-SXM-80GB", role="decode", count=2),
        ),
        local_prefill_threshold=64,
    ),
    "colocated-chunked": ClusterSpec(
        model=MODEL, pools=(PoolSpec.of("H100-SXM-80GB", role="colocated", count=2),)
    ),
    "colocated-unchunked": ClusterSpec(
        model=MODEL, pools=(PoolSpec.of("A100-SXM-80GB", role="colocated", count=2),), chunked_prefill=False
    ),
}


@pytest.fixture(scope="module", params=sorted(CLUSTERS))
def result(request):
    return simulate(CLUSTERS[request.param], REQUESTS, Slo(ttft_s=1.0, tpot_s=0.1))


def test_every_request_that_arrives_finishes_exactly_once(result):
    assert result.requests == result.completed == len(REQUESTS) == 19_366
    for ttft, e2e in zip(result.ttft_s, result.e2e_s, strict=True):
        assert math.isfinite(e2e)
        assert 0.0 < ttft <= e2e


def test_the_tokens_that_go_in_come_out(result):
    assert result.tokens_in == sum(r.prompt_tokens for r in REQUESTS)
    assert result.tokens_out == sum(r.output_tokens for r in REQUESTS)


def test_the_number_in_the_system_is_the_arrival_rate_times_the_time_in_it(result):
    mean_e2e = sum(result.e2e_s) / result.requests
    assert result.mean_in_system == pytest.approx(result.arrival_rate_rps * mean_e2e, rel=1e-9)
    assert result.arrival_rate_rps == pytest.approx(19_366 / REQUESTS[-1].arrival_s, rel=0.01)


def test_events_grow_with_the_requests_not_with_the_steps(result):
    assert result.duration_s == pytest.approx(3500, rel=0.01)
    assert result.events < 10 * result.requests  # O(1) events per request, whatever the output lengths
    assert result.engine_steps > 2 * result.events


def test_an_hour_on_32_gpus_simulates_a_thousand_times_faster_than_real_time():
    big = catalog.model("llama-3.1-70b")
    cluster = ClusterSpec(
        model=big,
        pools=(
            PoolSpec.of("H100-SXM-80GB", role="prefill", count=2, tp=4),
            PoolSpec.of("A100-SXM-80GB", role="decode", count=6, tp=4),
        ),
    )
    requests = requests_from_trace(read_trace(CONV, "azure"), max_context=big.max_context)
    started = time.process_time()  # CPU time: other processes on the machine do not count
    result = simulate(cluster, requests, Slo(ttft_s=1.0, tpot_s=0.1))
    assert result.duration_s / (time.process_time() - started) > 1000
    assert result.attainment > 0.95
