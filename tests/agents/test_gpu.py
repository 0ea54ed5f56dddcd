"""GPU readings: NVML where there is a GPU, and simulated GPUs that follow the sim engines' work."""

from __future__ import annotations

import time

import httpx
import pytest

from agents.engines.metrics import SimActivity
from agents.gpu import IDLE_MEMORY_BYTES, GpuReadError, NvmlGpuReader, SimulatedGpuReader
from profiler.catalog import tier
from profiler.perfmodel import GPU_MEMORY_UTILIZATION
from tests.agents.engines.conftest import running_sim, words

H100 = tier("H100-SXM-80GB")


def decoding(busy_s: float, batch: int = 32, context: int = 1500) -> SimActivity:
    steps = busy_s / 0.02
    return SimActivity(decode_busy_s=busy_s, decode_steps=steps, decode_seqs=steps * batch,
                       decode_context_tokens=steps * batch * context)  # fmt: skip


def prefilling(busy_s: float, tokens_per_step: int = 4096) -> SimActivity:
    steps = busy_s / 0.1
    return SimActivity(prefill_busy_s=busy_s, prefill_steps=steps, prefill_tokens=steps * tokens_per_step)


def node(*workers: tuple[str, tuple[int, ...]]) -> SimulatedGpuReader:
    reader = SimulatedGpuReader("H100-SXM-80GB", 8)
    for name, gpus in workers:
        reader.place(name, gpus, "llama-3.1-8b" if len(gpus) == 1 else "llama-3.1-70b", len(gpus))
    return reader


def test_nvml_is_read_where_a_gpu_is_and_refused_cleanly_where_none_is() -> None:
    reader = NvmlGpuReader()
    if not reader.available():
        with pytest.raises(GpuReadError):
            reader.read()
        return
    readings = reader.read()
    assert readings
    assert [reading.index for reading in readings] == list(range(len(readings)))
    for reading in readings:
        assert 0.0 <= reading.utilization <= 1.0
        assert reading.power_w > 0
        assert 0 < reading.memory_used_bytes <= reading.memory_total_bytes
    reader.close()


def test_idle_gpus_read_the_tiers_idle_draw_and_little_memory() -> None:
    readings = node().read()
    assert len(readings) == 8
    for reading in readings:
        assert reading.utilization == 0.0
        assert reading.power_w == H100.idle_w
        assert reading.memory_used_bytes == IDLE_MEMORY_BYTES
        assert reading.memory_total_bytes == int(H100.memory_bytes)
        assert reading.name == "H100-SXM-80GB"


def test_a_placed_worker_holds_what_vllm_takes_at_start_on_each_of_its_gpus() -> None:
    readings = node(("big", (2, 3))).read()
    # Weights, vLLM's reserve and the KV cache fill its share of the GPU (to a token's bytes).
    expected = H100.memory_bytes * GPU_MEMORY_UTILIZATION + IDLE_MEMORY_BYTES
    assert readings[2].memory_used_bytes == pytest.approx(expected, abs=2e5)
    assert readings[3].memory_used_bytes == readings[2].memory_used_bytes
    assert readings[2].power_w == H100.idle_w  # placed, but not yet observed working
    assert readings[1].memory_used_bytes == IDLE_MEMORY_BYTES


def test_utilization_is_the_busy_share_and_power_rises_with_it_between_idle_and_tdp() -> None:
    reader = node(("w", (0,)))
    powers = []
    for busy_s in (0.0, 0.25, 0.5, 1.0):
        reader.observe("w", decoding(busy_s), 1.0)
        reading = reader.read()[0]
        assert reading.utilization == pytest.approx(busy_s)
        powers.append(reading.power_w)
    assert powers[0] == H100.idle_w
    assert powers == sorted(powers)
    assert len(set(powers)) == 4
    assert H100.idle_w < powers[-1] < H100.tdp_w


def test_a_compute_bound_prefill_draws_near_tdp_and_more_than_a_decode() -> None:
    reader = node(("p", (0,)), ("d", (1,)))
    reader.observe("p", prefilling(1.0), 1.0)
    reader.observe("d", decoding(1.0), 1.0)
    prefill, decode = reader.read()[:2]
    assert prefill.power_w > 0.9 * H100.tdp_w
    assert prefill.power_w <= H100.tdp_w
    assert decode.power_w < prefill.power_w
    assert prefill.temperature_c > decode.temperature_c > reader.read()[2].temperature_c


def test_a_tp_worker_loads_every_one_of_its_gpus_alike() -> None:
    reader = node(("big", (4, 5)))
    reader.observe("big", decoding(0.6), 2.0)
    readings = reader.read()
    assert readings[4].power_w == readings[5].power_w > H100.idle_w
    assert readings[4].utilization == pytest.approx(0.3)
    assert readings[6].power_w == H100.idle_w


def test_busy_time_over_the_window_reads_as_full_not_more() -> None:
    reader = node(("w", (0,)))
    reader.observe("w", SimActivity(prefill_busy_s=0.7, decode_busy_s=0.5, prefill_steps=7, prefill_tokens=7000,
                                    decode_steps=25, decode_seqs=25), 1.0)  # fmt: skip
    reading = reader.read()[0]
    assert reading.utilization == 1.0
    assert reading.power_w <= H100.tdp_w


def test_the_same_activity_always_reads_the_same() -> None:
    first, second = node(("w", (0,))), node(("w", (0,)))
    for reader in (first, second):
        reader.observe("w", decoding(0.4), 1.0)
    assert first.read() == second.read()


def test_a_removed_worker_leaves_its_gpus_idle() -> None:
    reader = node(("w", (0,)))
    reader.observe("w", decoding(0.9), 1.0)
    reader.remove("w")
    assert reader.read()[0].power_w == H100.idle_w
    assert reader.read()[0].memory_used_bytes == IDLE_MEMORY_BYTES


def test_placements_outside_the_node_and_unknown_workers_are_refused() -> None:
    reader = node()
    with pytest.raises(ValueError, match=r"must be 1 of this node's 0\.\.7"):
        reader.place("w", (8,), "llama-3.1-8b", 1)
    with pytest.raises(KeyError, match="not placed"):
        reader.observe("ghost", decoding(0.1), 1.0)
    reader.place("w", (0,), "llama-3.1-8b", 1)
    with pytest.raises(ValueError, match="window"):
        reader.observe("w", decoding(0.1), 0.0)


def test_a_sim_workers_counters_drive_its_simulated_gpu() -> None:
    reader = SimulatedGpuReader("H100-SXM-80GB", 2)
    with running_sim("colocated", name="gpu-driver") as worker:
        reader.place("gpu-driver", worker.spec.gpu_ids, "llama-3.1-8b", 1)
        before, started = worker.metrics(), time.monotonic()
        httpx.post(f"{worker.url}/v1/completions", json={"prompt": words(3000), "max_tokens": 30}, timeout=30)
        after, wall_s = worker.metrics(), time.monotonic() - started
    assert after.sim is not None
    assert before.sim is not None
    reader.observe("gpu-driver", after.sim.minus(before.sim), wall_s)
    busy, idle = reader.read()
    # One request, alone: the GPU was busy for most of the window (HTTP and scrapes are the rest).
    assert 0.5 < busy.utilization <= 1.0
    assert H100.idle_w < busy.power_w < H100.tdp_w
    assert idle.power_w == H100.idle_w
