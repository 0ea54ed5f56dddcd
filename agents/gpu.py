"""GPU readings for a node agent: real ones through NVML, or simulated GPUs driven by simulated engines.

Either way a reader answers ``read()`` with one GpuReading per GPU of the node, indexed as NVML
numbers them (the engines' launchers set ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that CUDA agrees).

A simulated GPU follows the sim workers placed on it: the agent feeds each worker's step activity
since its last scrape (``SimActivity.minus`` of two ``cleave_sim_*`` scrapes) and the wall seconds in
between. Utilization is the busy share of that window; power is the perf model's curve from the
tier's idle draw towards TDP, by phase and by how the batch keeps the GPU busy
(``PerfModel.power_w``); memory is what vLLM takes at start-up (weights, its reserve and the KV
cache: ``gpu_memory_utilization`` of the GPU) for every GPU a worker holds; temperature rises
linearly with power from ambient. The same inputs always give the same readings.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.engines.metrics import SimActivity
from profiler import catalog
from profiler.perfmodel import PerfModel

AMBIENT_C = 30.0
# Where a GPU running at TDP settles with data-centre cooling; between ambient and here, linear in power.
FULL_POWER_C = 75.0
# What an idle GPU shows as used (driver and context reservations), as nvidia-smi reports on H100s.
IDLE_MEMORY_BYTES = 512 * 2**20


class GpuReadError(RuntimeError):
    """GPUs that cannot be read: no NVML, no driver, or a device that stopped answering."""


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one moment."""

    index: int
    utilization: float
    power_w: float
    memory_used_bytes: int
    memory_total_bytes: int
    temperature_c: float
    name: str = ""


class GpuReader(ABC):
    """Reads every GPU of a node."""

    def available(self) -> bool:
        """Whether ``read`` can work here."""
        return True

    @abstractmethod
    def read(self) -> list[GpuReading]:
        """One reading per GPU, by index."""


class NvmlGpuReader(GpuReader):
    """The node's real GPUs, through NVML (``nvidia-ml-py``), initialized on first use."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []

    def available(self) -> bool:
        try:
            self._start()
        except GpuReadError:
            return False
        return True

    def _start(self) -> None:
        if self._nvml is not None:
            return
        try:
            import pynvml
        except ImportError as error:
            raise GpuReadError(f"NVML is not installed (pip install nvidia-ml-py): {error}") from None
        try:
            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except pynvml.NVMLError as error:
            raise GpuReadError(f"NVML cannot start (no NVIDIA driver or GPU here?): {error}") from None
        self._nvml, self._handles = pynvml, handles

    def read(self) -> list[GpuReading]:
        self._start()
        nvml = self._nvml
        readings = []
        for index, handle in enumerate(self._handles):
            try:
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                name = nvml.nvmlDeviceGetName(handle)
                readings.append(
                    GpuReading(
                        index=index,
                        utilization=self._optional(
                            lambda h: nvml.nvmlDeviceGetUtilizationRates(h).gpu, handle
                        )
                        / 100.0,
                        power_w=self._optional(nvml.nvmlDeviceGetPowerUsage, handle) / 1000.0,
                        memory_used_bytes=int(memory.used),
                        memory_total_bytes=int(memory.total),
                        temperature_c=self._optional(
                            lambda h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU), handle
                        ),
                        name=name.decode() if isinstance(name, bytes) else str(name),
                    )
                )
            except nvml.NVMLError as error:
                raise GpuReadError(f"GPU {index} cannot be read: {error}") from None
        return readings

    def _optional(self, query: Any, handle: Any) -> float:
        # Some parts do not report every field (power on some PCIe cards): read 0 rather than fail.
        try:
            return float(query(handle))
        except self._nvml.NVMLError_NotSupported:
            return 0.0

    def close(self) -> None:
        """Release NVML; the next read starts it again."""
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml, self._handles = None, []


@dataclass(frozen=True)
class _Placement:
    gpu_ids: tuple[int, ...]
    perf: PerfModel
    memory_per_gpu_bytes: float


@dataclass(frozen=True)
class _Load:
    utilization: float
    power_above_idle_w: float


class SimulatedGpuReader(GpuReader):
    """``gpu_count`` simulated GPUs of one tier, busy as the sim workers placed on them report."""

    def __init__(self, tier: str, gpu_count: int) -> None:
        if gpu_count < 1:
            raise ValueError(f"gpu_count must be >= 1, got {gpu_count}")
        self.tier = catalog.tier(tier)
        self.gpu_count = gpu_count
        self._placements: dict[str, _Placement] = {}
        self._loads: dict[str, _Load] = {}

    def place(
        self,
        worker: str,
        gpu_ids: Sequence[int],
        model: str,
        tp: int,
        dtype: str = "bf16",
        *,
        kv_capacity_tokens: int | None = None,
    ) -> None:
        """Put a worker on these GPUs: they hold its memory from now on, and draw power as it works.

        ``kv_capacity_tokens`` is the worker's KV cache when overridden (the sim's flag of that name).
        """
        ids = tuple(gpu_ids)
        bad = [gpu for gpu in ids if not 0 <= gpu < self.gpu_count]
        if bad or len(ids) != tp:
            raise ValueError(
                f"worker {worker}: GPUs {list(ids)} must be {tp} of this node's 0..{self.gpu_count - 1}"
            )
        perf = PerfModel.for_names(model, self.tier.name, tp, dtype)
        kv_tokens = perf.kv_capacity_tokens if kv_capacity_tokens is None else kv_capacity_tokens
        memory = (
            perf.weight_bytes_per_gpu
            + perf.reserved_bytes_per_gpu
            + kv_tokens * perf.kv_bytes_per_token_per_gpu
        )
        self._placements[worker] = _Placement(ids, perf, memory)
        self._loads.pop(worker, None)

    def remove(self, worker: str) -> None:
        """Take a stopped worker off its GPUs."""
        self._placements.pop(worker, None)
        self._loads.pop(worker, None)

    def observe(self, worker: str, activity: SimActivity, wall_s: float) -> None:
        """What the worker's GPUs did over the last ``wall_s`` seconds: its step counters' deltas."""
        placement = self._placements.get(worker)
        if placement is None:
            raise KeyError(f"worker {worker!r} is not placed on this node's simulated GPUs")
        if wall_s <= 0:
            raise ValueError(f"the observed window must be > 0 s, got {wall_s}")
        self._loads[worker] = _load(placement.perf, activity, wall_s)

    def read(self) -> list[GpuReading]:
        tier = self.tier
        total = int(tier.memory_bytes)
        utilization = [0.0] * self.gpu_count
        above_idle = [0.0] * self.gpu_count
        memory = [float(IDLE_MEMORY_BYTES)] * self.gpu_count
        for worker, placement in self._placements.items():
            load = self._loads.get(worker)
            for gpu in placement.gpu_ids:
                memory[gpu] += placement.memory_per_gpu_bytes
                if load is not None:
                    utilization[gpu] += load.utilization
                    above_idle[gpu] += load.power_above_idle_w
        readings = []
        for gpu in range(self.gpu_count):
            power = min(tier.idle_w + above_idle[gpu], tier.tdp_w)
            heat = (power - tier.idle_w) / (tier.tdp_w - tier.idle_w)
            readings.append(
                GpuReading(
                    index=gpu,
                    utilization=min(utilization[gpu], 1.0),
                    power_w=power,
                    memory_used_bytes=min(int(memory[gpu]), total),
                    memory_total_bytes=total,
                    temperature_c=AMBIENT_C + heat * (FULL_POWER_C - AMBIENT_C),
                    name=tier.name,
                )
            )
        return readings


def _load(perf: PerfModel, activity: SimActivity, wall_s: float) -> _Load:
    prefill_share = max(activity.prefill_busy_s, 0.0) / wall_s
    decode_share = max(activity.decode_busy_s, 0.0) / wall_s
    busy = prefill_share + decode_share
    if busy > 1.0:  # scrapes a little apart from the steps they count
        prefill_share, decode_share = prefill_share / busy, decode_share / busy
    idle_w = perf.tier.idle_w
    above = 0.0
    if prefill_share > 0:
        tokens = _mean(activity.prefill_tokens, activity.prefill_steps, 1024.0)
        above += perf.power_w("prefill", prefill_share, 1, tokens_per_seq=max(round(tokens), 1)) - idle_w
    if decode_share > 0:
        batch = _mean(activity.decode_seqs, activity.decode_steps, 1.0)
        context = _mean(activity.decode_context_tokens, activity.decode_seqs, 1024.0)
        above += (
            perf.power_w("decode", decode_share, max(round(batch), 1), tokens_per_seq=max(round(context), 1))
            - idle_w
        )
    return _Load(min(busy, 1.0), above)


def _mean(total: float, count: float, default: float) -> float:
    return total / count if count > 0 and math.isfinite(total) else default
