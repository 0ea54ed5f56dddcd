"""The load generator: open-loop arrivals from a trace, prompts of the recorded lengths, latencies and SLOs."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agents.loadgen import Outcome, Planned, PromptBuilder, percentiles, schedule, summarize
from profiler.traces import TraceRecord
from tests.agents.router.conftest import KEY, ROOT, routing, running_router, running_sim


def rows(*arrivals: float) -> list[TraceRecord]:
    return [TraceRecord(arrival_s=at, prompt_tokens=10 + i, output_tokens=5) for i, at in enumerate(arrivals)]


def test_it_replays_the_trace_timestamps_sped_up() -> None:
    plan = list(schedule(rows(100.0, 101.0, 104.0), speed=2.0, rate=None, seed=0, duration_s=None, requests=None))
    assert [p.at_s for p in plan] == [0.0, 0.5, 2.0]
    assert [(p.prompt_tokens, p.max_tokens) for p in plan] == [(10, 5), (11, 5), (12, 5)]


def test_poisson_arrivals_are_seeded_and_stop_at_the_duration() -> None:
    def plan(seed: int) -> list[float]:
        trace = rows(*range(10_000))
        return [p.at_s for p in schedule(trace, speed=None, rate=50.0, seed=seed, duration_s=20.0, requests=None)]

    first = plan(1)
    assert first == plan(1)
    assert first != plan(2)
    assert len(first) == pytest.approx(1000, rel=0.1)
    assert max(first) <= 20.0


def test_prompts_have_the_recorded_words_and_share_their_traced_prefixes() -> None:
    builder = PromptBuilder(seed=3)
    a = builder.build(Planned(0, 0.0, 1200, 10, hash_ids=(7, 8, 9)), 1200)
    b = builder.build(Planned(1, 0.0, 700, 10, hash_ids=(7, 11)), 700)
    c = builder.build(Planned(2, 0.0, 700, 10), 700)
    assert [len(text.split()) for text in (a, b, c)] == [1200, 700, 700]
    assert a.split()[:512] == b.split()[:512]
    assert a.split()[512:700] != b.split()[512:700]
    assert c.split()[:50] != a.split()[:50]


def test_percentiles_and_slo_attainment_count_failures_as_misses() -> None:
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None, "mean": None}
    assert percentiles([float(i) for i in range(1, 101)])["p99"] == 99.0
    outcomes = [Outcome(True, ttft_s=0.05, tpot_s=0.001, e2e_s=0.1, output_tokens=10),
                Outcome(True, ttft_s=0.5, tpot_s=0.001, e2e_s=0.6, output_tokens=10),
                Outcome(False, "http_429")]  # fmt: skip
    args = argparse.Namespace(time_scale=0.1, ttft_slo=1.0, tpot_slo=0.05)
    report = summarize(outcomes, 2.0, args)
    assert report["errors"] == {"http_429": 1}
    assert report["slo"]["attainment"] == pytest.approx(1 / 3)  # 0.05 s / 0.1 = 0.5 s meets; 5 s does not
    assert report["ttft_s"]["p50"] == pytest.approx(0.5)
    assert report["output_tokens_per_s"] == 10.0


@pytest.mark.slow
def test_it_replays_a_trace_against_a_router(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(json.dumps({"timestamp": i * 50, "input_length": 100 + i, "output_length": 8,
                                         "hash_ids": [0, i]}) + "\n" for i in range(12)))  # fmt: skip
    with running_sim("colocated", name="c0", time_scale=0.1) as worker, \
            running_router(tmp_path, routing(colocated=[worker])) as router:  # fmt: skip
        def loadgen(*extra: str) -> dict:
            argv = [sys.executable, "-m", "agents.loadgen", "--router", router.url, "--trace", str(trace),
                    "--format", "mooncake", "--speed", "2", "--json", *extra]  # fmt: skip
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
            return json.loads(done.stdout.strip().splitlines()[-1])

        streamed = loadgen("--api-key", KEY, "--stream", "--ttft-slo", "2", "--tpot-slo", "0.5",
                           "--time-scale", "0.1")  # fmt: skip
        refused = loadgen("--api-key", "sk-clv-00000000-wrong", "--requests", "3", "--model", "llama-3.1-8b")
        prompt_tokens = worker.metrics().prompt_tokens_total
    assert (streamed["requests"], streamed["ok"], streamed["errors"]) == (12, 12, {})
    assert streamed["slo"]["attainment"] == 1.0
    assert streamed["ttft_s"]["p50"] is not None
    assert streamed["tpot_s"]["p50"] is not None
    assert streamed["output_tokens_per_s"] > 0
    assert prompt_tokens == sum(100 + i for i in range(12))  # the sim counted the recorded lengths
    assert refused["errors"] == {"http_401": 3}
