"""Workloads: Poisson arrivals over an empirical length sample, and traces turned into requests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controlplane.planning.core.sim import (
    LengthSampler,
    Request,
    SimulationError,
    poisson_requests,
    requests_from_trace,
)
from profiler.traces import TraceRecord, read_trace

CONV = Path(__file__).resolve().parents[3] / "data/traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv"
PAIRS = [(100, 10), (2000, 300), (512, 1)]


def test_poisson_arrivals_have_the_asked_rate_and_lengths_from_the_sample():
    requests = poisson_requests(20.0, duration_s=500.0, lengths=PAIRS, seed=4)
    arrivals = np.array([r.arrival_s for r in requests])
    assert len(requests) == pytest.approx(10_000, rel=0.05)
    assert np.all(np.diff(arrivals) >= 0)
    assert arrivals[-1] <= 500.0
    assert np.diff(arrivals).mean() == pytest.approx(1 / 20.0, rel=0.05)
    assert {(r.prompt_tokens, r.output_tokens) for r in requests} == set(PAIRS)


def test_the_same_seed_gives_the_same_requests_and_another_rate_only_squeezes_them():
    slow = poisson_requests(2.0, count=300, lengths=PAIRS, seed=9)
    assert slow == poisson_requests(2.0, count=300, lengths=PAIRS, seed=9)
    assert slow != poisson_requests(2.0, count=300, lengths=PAIRS, seed=10)
    fast = poisson_requests(8.0, count=300, lengths=PAIRS, seed=9)
    assert [r.prompt_tokens for r in fast] == [r.prompt_tokens for r in slow]
    assert [r.arrival_s * 4 for r in fast] == pytest.approx([r.arrival_s for r in slow])
    by_duration = poisson_requests(8.0, duration_s=fast[-1].arrival_s, lengths=PAIRS, seed=9)
    assert by_duration == fast


def test_a_trace_becomes_requests_sorted_from_zero_and_fitted_to_the_context():
    records = [
        TraceRecord(arrival_s=5.0, prompt_tokens=3000, output_tokens=200),
        TraceRecord(arrival_s=-2.0, prompt_tokens=100, output_tokens=0, cached_prompt_tokens=40),
        TraceRecord(arrival_s=1.0, prompt_tokens=1500, output_tokens=900),
    ]
    requests = requests_from_trace(records, max_context=2048)
    assert requests == [
        Request(0.0, 100, 1, 40),  # an empty answer still gets its prefill's token
        Request(3.0, 1500, 548),  # generation stops when the window is full
        Request(7.0, 2047, 1),  # a prompt longer than the window is cut to leave room for one token
    ]


def test_the_azure_conv_trace_reads_whole():
    requests = requests_from_trace(read_trace(CONV, "azure"))
    assert len(requests) == 19_366
    assert requests[0].arrival_s == 0.0
    assert LengthSampler.from_records(read_trace(CONV, "azure"), max_context=4096).prompt_tokens[0] == 374


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: requests_from_trace([]), "no requests"),
        (lambda: requests_from_trace([TraceRecord(None, 10, 10)]), "no arrival time"),
        (lambda: poisson_requests(0.0, count=10, lengths=PAIRS, seed=0), "rate_rps"),
        (lambda: poisson_requests(1.0, lengths=PAIRS, seed=0), "exactly one of duration_s and count"),
        (lambda: poisson_requests(1.0, count=5, lengths=[], seed=0), "empty"),
        (lambda: Request(0.0, 0, 5), "prompt_tokens"),
        (lambda: Request(0.0, 10, 5, 11), "cached_prompt_tokens"),
        (lambda: Request(float("nan"), 10, 5), "arrival_s"),
    ],
)
def test_bad_workloads_are_refused_with_the_reason(make, message):
    with pytest.raises(SimulationError, match=message):
        make()
