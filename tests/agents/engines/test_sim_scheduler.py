"""The sim's scheduler, in process: how it forms steps, times them, and holds requests back."""

from __future__ import annotations

import asyncio

import pytest

from agents.engines.sim_scheduler import CapacityError, SchedulerConfig, SimRequest, SimScheduler
from profiler.perfmodel import PerfModel

PERF = PerfModel.for_names("llama-3.1-8b", "H100-SXM-80GB")


def scheduler(**config: int | float | str) -> SimScheduler:
    return SimScheduler(PERF, SchedulerConfig(**{"kv_capacity_tokens": 100_000, **config}))  # type: ignore[arg-type]


def request(prompt: int, output: int) -> SimRequest:
    return SimRequest(prompt_tokens=prompt, output_tokens=output, arrival_s=0.0)


def run_step(sim: SimScheduler, now: float = 0.0):  # type: ignore[no-untyped-def]
    step = sim.plan_step(now)
    assert step is not None
    model_s, share = sim.step_time_s(step)
    sim.finish_step(step, now, model_s, share)
    return step, model_s, share


def test_a_long_prompt_is_prefilled_in_chunks_of_the_token_budget() -> None:
    sim = scheduler(max_num_batched_tokens=512)
    long = request(1300, 2)
    sim.submit(long)
    sizes = []
    for _ in range(3):
        step, _model_s, share = run_step(sim)
        ((_, chunk),) = step.chunks
        sizes.append(chunk)
        assert share == 1.0
    assert sizes == [512, 512, 276]
    assert long.generated == 1  # the last chunk's pass samples the first token
    assert sim.stats.prefill_steps == 3
    assert sim.stats.prefill_tokens == 1300


def test_a_chunk_pays_attention_over_everything_before_it() -> None:
    sim = scheduler(max_num_batched_tokens=512)
    sim.submit(request(1024, 1))
    run_step(sim)
    step, model_s, _ = run_step(sim)
    assert step.prefill_sum_sq == 1024**2 - 512**2
    assert model_s == PERF.prefill_time_from_sums_s(512, 1024**2 - 512**2, 1)


def test_an_unchunked_prompt_takes_exactly_the_perf_models_prefill_time() -> None:
    sim = scheduler()
    sim.submit(request(2000, 1))
    _, model_s, _ = run_step(sim)
    assert model_s == PERF.prefill_time_s([2000])


def test_decodes_and_prefill_chunks_share_a_step_within_the_budget() -> None:
    sim = scheduler(max_num_batched_tokens=256)
    talker = request(100, 50)
    sim.submit(talker)
    run_step(sim)  # its prefill
    sim.submit(request(1000, 1))
    step, model_s, share = run_step(sim)
    assert step.decodes == (talker,)
    assert [chunk for _, chunk in step.chunks] == [255]
    assert model_s == PERF.mixed_step_s(255, 255.0**2, 1, 101)
    assert 0.0 < share < 1.0
    assert sim.stats.decode_steps == 1
    assert sim.stats.prefill_steps == 2


def test_a_request_waits_until_its_kv_fits() -> None:
    sim = scheduler(kv_capacity_tokens=1000)
    first, second = request(300, 300), request(300, 300)
    sim.submit(first)
    sim.submit(second)
    run_step(sim)
    assert sim.running == [first]
    assert sim.requests_waiting == 1
    assert sim.kv_reserved == 600
    while not first.finished:
        run_step(sim)
    run_step(sim)
    assert sim.running == [second]
    assert sim.requests_waiting == 0


def test_a_request_waits_for_a_free_sequence_slot() -> None:
    sim = scheduler(max_num_seqs=2)
    requests = [request(10, 5) for _ in range(3)]
    for each in requests:
        sim.submit(each)
    run_step(sim)
    assert sim.requests_running == 2
    assert sim.requests_waiting == 1


def test_a_request_larger_than_the_whole_cache_is_refused() -> None:
    with pytest.raises(CapacityError, match="needs 1500 tokens of KV cache"):
        scheduler(kv_capacity_tokens=1000).submit(request(1000, 500))


def test_usage_counts_the_kv_written_and_a_finished_request_frees_it() -> None:
    sim = scheduler(kv_capacity_tokens=1000)
    talker = request(200, 3)
    sim.submit(talker)
    run_step(sim)
    assert sim.kv_cache_usage == pytest.approx(0.2)
    run_step(sim)
    assert sim.kv_cache_usage == pytest.approx(0.201)
    run_step(sim)
    assert talker.finished
    assert sim.kv_cache_usage == 0.0
    assert sim.kv_reserved == 0


def test_a_cancelled_request_gives_back_its_slot_and_kv() -> None:
    sim = scheduler(kv_capacity_tokens=1000)
    gone, waiting = request(600, 300), request(150, 1)
    sim.submit(gone)
    sim.submit(waiting)
    run_step(sim)
    assert sim.requests_waiting == 1
    sim.cancel(gone)
    assert sim.running == []
    assert sim.kv_reserved == 0
    assert sim.kv_written == 0
    run_step(sim)
    assert waiting.finished


def test_the_loop_serves_many_requests_at_once_and_counts_them() -> None:
    async def scenario() -> SimScheduler:
        sim = SimScheduler(PERF, SchedulerConfig(kv_capacity_tokens=100_000, time_scale=0.01))
        loop_task = asyncio.create_task(sim.run())
        requests = [SimRequest(50 + i, 20, asyncio.get_running_loop().time()) for i in range(100)]
        for each in requests:
            sim.submit(each)
        for each in requests:
            while not each.finished:
                await each.wakeup.wait()
                each.wakeup.clear()
        loop_task.cancel()
        return sim

    sim = asyncio.run(scenario())
    assert sim.stats.requests_finished == 100
    assert sim.stats.generation_tokens == 2000
    assert sim.stats.prompt_tokens == sum(50 + i for i in range(100))
    assert sim.stats.ttft.count == 100
    assert sim.stats.itl.count == 1900
    # Continuous batching: far fewer decode steps than tokens.
    assert sim.stats.decode_steps < 100
