"""The sim under concurrent load, over HTTP: chunked prefill, KV capacity, and many streams at once."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx
import pytest

from profiler.perfmodel import PerfModel
from tests.agents.engines.conftest import running_sim, words

PERF = PerfModel.for_names("llama-3.1-8b", "H100-SXM-80GB")


async def stream_times(
    client: httpx.AsyncClient, url: str, body: dict[str, object]
) -> tuple[float, list[float]]:
    """When the request left, and when each of its tokens arrived."""
    start, arrivals = time.perf_counter(), []
    async with client.stream("POST", f"{url}/v1/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.perf_counter())
    return start, arrivals


def test_a_long_prompt_is_chunked_so_running_decodes_keep_going() -> None:
    budget, prompt = 512, 2048

    async def scenario(url: str) -> tuple[list[float], float]:
        async with httpx.AsyncClient(timeout=30) as client:
            talker = asyncio.create_task(stream_times(client, url, {"prompt": "hi", "max_tokens": 40}))
            await asyncio.sleep(0.05)
            _, long_times = await stream_times(client, url, {"prompt": words(prompt), "max_tokens": 1})
            _, talker_times = await talker
        gaps = [later - earlier for earlier, later in itertools.pairwise(talker_times)]
        return gaps, long_times[0]

    with running_sim("colocated", max_num_batched_tokens=budget) as worker:
        before = worker.metrics()
        gaps, _ = asyncio.run(scenario(worker.url))
        after = worker.metrics()
    assert after.sim is not None
    assert before.sim is not None
    activity = after.sim.minus(before.sim)
    # 2,048 prompt tokens in chunks of 511 next to the talker's decode: five steps, not one.
    assert activity.prefill_steps >= 5
    # The talker waited at most one chunk per token, never the whole prefill.
    assert max(gaps) < 0.6 * PERF.prefill_time_s([prompt])
    assert max(gaps) > 2 * PERF.decode_step_s(1, 50)


def test_a_request_whose_kv_does_not_fit_waits_for_the_one_before_it() -> None:
    async def scenario(url: str) -> tuple[tuple[float, list[float]], tuple[float, list[float]], int]:
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"prompt": words(100), "max_tokens": 100}  # 200 KV tokens each, of 300
            first = asyncio.create_task(stream_times(client, url, body))
            await asyncio.sleep(0.02)
            second = asyncio.create_task(stream_times(client, url, body))
            await asyncio.sleep(0.05)
            waiting = (await client.get(f"{url}/metrics")).text
            return (
                await first,
                await second,
                waiting.count('vllm:num_requests_waiting{model_name="llama-3.1-8b",engine="0"} 1.0'),
            )

    with running_sim("colocated", kv_capacity_tokens=300, time_scale=0.2) as worker:
        (_, first_times), (second_start, second_times), seen_waiting = asyncio.run(scenario(worker.url))
        too_big = httpx.post(f"{worker.url}/v1/completions", json={"prompt": words(250), "max_tokens": 100})
    assert seen_waiting == 1
    assert second_times[0] >= first_times[-1]
    assert second_times[0] - second_start > 0.8 * 100 * PERF.decode_step_s(1, 150) * 0.2
    assert too_big.status_code == 400
    assert too_big.json()["error"]["code"] == "kv_capacity_exceeded"


def test_one_worker_serves_two_hundred_concurrent_streams() -> None:
    streams, tokens = 200, 30

    async def scenario(url: str) -> list[tuple[float, list[float]]]:
        limits = httpx.Limits(max_connections=streams + 10)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            body = {"prompt": words(200), "max_tokens": tokens}
            return await asyncio.gather(*(stream_times(client, url, body) for _ in range(streams)))

    with running_sim("colocated", name="busy") as worker:
        before = worker.metrics()
        results = asyncio.run(scenario(worker.url))
        after = worker.metrics()
    assert all(len(arrivals) == tokens for _, arrivals in results)
    assert after.generation_tokens_total - before.generation_tokens_total == streams * tokens
    assert after.requests_finished_total - before.requests_finished_total == streams
    # The decode batch ran all of them together: its step time, as the model has it, holds roughly.
    batch_step_s = PERF.decode_step_s(streams, streams * (200 + tokens // 2))
    finished = max(arrivals[-1] for _, arrivals in results) - min(start for start, _ in results)
    assert finished == pytest.approx(
        PERF.prefill_time_s([200] * streams) + (tokens - 1) * batch_step_s, rel=0.35
    )
