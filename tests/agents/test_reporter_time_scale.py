"""A simulated worker's latencies leave the agent in model time: its wall-clock TTFT and ITL divided by its
time scale, so the control plane compares them with the perf model as they are."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from agents.engines import launcher
from agents.engines.metrics import WorkerMetrics
from agents.reporter import Reporter


def metrics_text(tokens: int, *, time_scale: str | None) -> str:
    """A worker's /metrics after ``tokens`` inter-token gaps in (0.5, 1] ms and as many first tokens in (5, 10] ms."""
    lines = [
        "# TYPE vllm:num_requests_running gauge",
        'vllm:num_requests_running{engine="0",model_name="m"} 8.0',
        "# TYPE vllm:inter_token_latency_seconds histogram",
        'vllm:inter_token_latency_seconds_bucket{engine="0",le="0.0005",model_name="m"} 0.0',
        f'vllm:inter_token_latency_seconds_bucket{{engine="0",le="0.001",model_name="m"}} {tokens}.0',
        f'vllm:inter_token_latency_seconds_bucket{{engine="0",le="+Inf",model_name="m"}} {tokens}.0',
        f'vllm:inter_token_latency_seconds_sum{{engine="0",model_name="m"}} {tokens * 0.00075}',
        f'vllm:inter_token_latency_seconds_count{{engine="0",model_name="m"}} {tokens}.0',
        "# TYPE vllm:time_to_first_token_seconds histogram",
        'vllm:time_to_first_token_seconds_bucket{engine="0",le="0.005",model_name="m"} 0.0',
        f'vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.01",model_name="m"}} {tokens}.0',
        f'vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf",model_name="m"}} {tokens}.0',
        f'vllm:time_to_first_token_seconds_sum{{engine="0",model_name="m"}} {tokens * 0.0075}',
        f'vllm:time_to_first_token_seconds_count{{engine="0",model_name="m"}} {tokens}.0',
    ]
    if time_scale is not None:
        lines += ["# TYPE cleave_sim_info gauge", f'cleave_sim_info{{engine="0",time_scale="{time_scale}"}} 1.0']
    return "\n".join(lines) + "\n"


class FakeLaunch:
    def __init__(self, engine: str, scrapes: list[WorkerMetrics]) -> None:
        self.launcher = SimpleNamespace(name=engine)
        self.scrapes = iter(scrapes)

    async def scrape(self, http: Any) -> WorkerMetrics:
        return next(self.scrapes)


def reported(engine: str, time_scale: str | None) -> dict[str, Any]:
    """The one worker sample an agent sends after two scrapes of a worker of ``engine``."""
    read = launcher(engine).parse_metrics
    launch = FakeLaunch(engine, [read(metrics_text(0, time_scale=time_scale)),
                                 read(metrics_text(100, time_scale=time_scale))])
    worker = SimpleNamespace(name="w0", role="decode", service="chat")
    supervisor = SimpleNamespace(launches=lambda: [(worker, launch, 4242)])
    reporter = Reporter(SimpleNamespace(), supervisor, SimpleNamespace(), None, http=SimpleNamespace(),
                        agent_version="test")
    asyncio.run(reporter.collect())
    asyncio.run(reporter.collect())
    [(kind, sample)] = reporter.buffer.take(10)
    assert kind == "worker"
    return sample


def test_a_sim_worker_latencies_are_divided_by_its_time_scale() -> None:
    sample = reported("sim", time_scale="0.01")
    # wall-clock p50s: 0.75 ms between tokens, 7.5 ms to the first; at a hundredth of real time
    assert sample["itl_p50_s"] == pytest.approx(0.075)
    assert sample["ttft_p50_s"] == pytest.approx(0.75)
    assert sample["itl_p90_s"] == pytest.approx(0.095)


def test_a_sim_worker_at_real_time_and_a_real_engine_report_as_measured() -> None:
    for engine, scale in (("sim", "1.0"), ("vllm", None)):
        sample = reported(engine, time_scale=scale)
        assert sample["itl_p50_s"] == pytest.approx(0.00075)
        assert sample["ttft_p50_s"] == pytest.approx(0.0075)
