"""What a GPU draws: the power shape fitted to Splitwise's measured A100 power, on any tier's idle-to-TDP range."""

from __future__ import annotations

from dataclasses import dataclass

from profiler.catalog import GpuTier


@dataclass(frozen=True)
class PowerShape:
    """Power while a step runs, as shares of the tier's idle-to-TDP range.

    waiting: while the GPU waits on the host or on all-reduce latency.
    prefill, decode: while the roofline keeps it saturated (compute in prefill, HBM in decode). A share
    above 1 is a load that would draw more than TDP: the power limit holds it at TDP by lowering clocks.
    """

    waiting: float
    prefill: float
    decode: float


def busy_power_w(gpu: GpuTier, phase: str, busy_fraction: float, shape: PowerShape | None = None) -> float:
    """Watts a GPU draws during a step that keeps it saturated ``busy_fraction`` of the time."""
    shape = shape or POWER_SHAPE
    full = shape.prefill if phase == "prefill" else shape.decode
    activity = shape.waiting + (full - shape.waiting) * min(max(busy_fraction, 0.0), 1.0)
    return gpu.idle_w + (gpu.tdp_w - gpu.idle_w) * min(max(activity, 0.0), 1.0)


# Fitted by bench/calibrate_perfmodel.py on data/reference/gpu_power_points.csv (Splitwise, DGX A100,
# the only power reference), 2026-11-27; other tiers use the same shares of their idle-to-TDP range.
POWER_SHAPE = PowerShape(waiting=0.122, prefill=1.12, decode=0.948)
