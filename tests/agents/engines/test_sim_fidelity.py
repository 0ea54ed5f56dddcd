"""At light load the sim's latencies, as a streaming client sees them, are the perf model's."""

from __future__ import annotations

import itertools
import statistics
import time

import httpx
import pytest

from profiler.perfmodel import PerfModel
from tests.agents.engines.conftest import read_sse, running_sim, words


def measure(url: str, prompt_tokens: int, max_tokens: int) -> tuple[float, float]:
    """Client-side TTFT and mean TPOT of one streamed request, alone on the worker."""
    arrivals: list[float] = []
    body = {"prompt": words(prompt_tokens), "max_tokens": max_tokens, "stream": True}
    with httpx.Client(timeout=60) as client:
        start = time.perf_counter()
        with client.stream("POST", f"{url}/v1/completions", json=body) as response:
            assert response.status_code == 200
            events = read_sse(response, arrivals.append)
    token_times = [at for at, event in zip(arrivals, events, strict=True) if event != "[DONE]"]
    assert len(token_times) == max_tokens
    gaps = [later - earlier for earlier, later in itertools.pairwise(token_times)]
    return token_times[0] - start, statistics.fmean(gaps)


def model_tpot_s(perf: PerfModel, prompt_tokens: int, max_tokens: int) -> float:
    # Token k (k >= 1) comes from a decode step over the prompt and the k tokens before it.
    return statistics.fmean(perf.decode_step_s(1, prompt_tokens + k) for k in range(1, max_tokens))


@pytest.mark.parametrize(
    ("model", "tier", "tp", "time_scale", "prompt_tokens", "max_tokens"),
    [
        # Real time: an 8B model on an H100, a 2,000-token prompt (TTFT ~69 ms, TPOT ~7.6 ms).
        ("llama-3.1-8b", "H100-SXM-80GB", 1, 1.0, 2000, 48),
        # Twenty times faster than life: Llama-70B on four A100s, so model time still dominates
        # the HTTP overhead (TTFT 2.29 s -> 114 ms, TPOT 45 ms -> 2.2 ms).
        ("llama-3.1-70b", "A100-SXM-80GB", 4, 0.05, 8000, 120),
    ],
)
def test_a_lone_request_sees_the_perf_models_ttft_and_tpot(
    model: str, tier: str, tp: int, time_scale: float, prompt_tokens: int, max_tokens: int
) -> None:
    perf = PerfModel.for_names(model, tier, tp)
    expected_ttft = perf.prefill_time_s([prompt_tokens]) * time_scale
    expected_tpot = model_tpot_s(perf, prompt_tokens, max_tokens) * time_scale
    with running_sim("colocated", model=model, tier=tier, tp=tp, time_scale=time_scale) as worker:
        for _ in range(2):  # the first requests of a process run cold code paths
            measure(worker.url, 16, 4)
        runs = [measure(worker.url, prompt_tokens, max_tokens) for _ in range(3)]
    # The median of three: the machine is shared, and one run may lose the CPU for a moment.
    ttft = statistics.median(run[0] for run in runs)
    tpot = statistics.median(run[1] for run in runs)
    print(
        f"{model} {tier} TP{tp} x{time_scale}: TTFT {ttft * 1e3:.2f} ms (model {expected_ttft * 1e3:.2f}), "
        f"TPOT {tpot * 1e3:.3f} ms (model {expected_tpot * 1e3:.3f})"
    )
    assert ttft == pytest.approx(expected_ttft, rel=0.10)
    assert tpot == pytest.approx(expected_tpot, rel=0.10)
