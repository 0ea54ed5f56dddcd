"""How well an engine uses each GPU tier: the efficiency factors the perf model is calibrated with, and
the links a KV cache can cross.

``bench/calibrate_perfmodel.py`` fits the factors to ``data/reference/gpu_points.csv``; the table here
holds what it found.
"""

from __future__ import annotations

from dataclasses import dataclass

from profiler import catalog
from profiler.catalog import GB
from profiler.errors import ConfigurationError

ENGINES = ("vllm", "distserve")

@dataclass(frozen=True)
class Link:
    """A point-to-point link a KV cache can travel over: bandwidth one direction per GPU, and latency."""

    name: str
    bandwidth_gbps: float
    latency_s: float

    @property
    def bytes_per_s(self) -> float:
        return self.bandwidth_gbps * GB


LINKS: dict[str, Link] = {
    # NVLink 4 (H100 SXM5): 18 links x 25 GB/s = 450 GB/s each way (NVIDIA H100 datasheet: 900 GB/s
    # bidirectional). Where the tier's own link is NVLink, kv_transfer_s uses the tier's figure instead
    # (A100: 300 GB/s, B200: 900 GB/s). Latency: a GPU-to-GPU copy through NVSwitch, order of a microsecond.
    "nvlink": Link("nvlink", 450.0, 1e-6),
    # PCIe Gen4 x16: 16 GT/s x 16 lanes with 128b/130b coding, about 32 GB/s each way (PCI-SIG PCIe 4.0
    # base spec), the link of the catalog's PCIe cards. Latency: a DMA through the host bridge, a few us.
    "pcie": Link("pcie", 32.0, 5e-6),
    # InfiniBand NDR: 400 Gb/s = 50 GB/s each way per port, one ConnectX-7 per GPU as in a DGX H100
    # (NVIDIA DGX H100 user guide). Latency: RDMA write end to end, a couple of microseconds.
    "infiniband": Link("infiniband", 50.0, 2e-6),
    # 100 Gb Ethernet (12.5 GB/s each way) over TCP, the common cloud NIC without RDMA; the kernel
    # network stack puts its latency in the tens of microseconds.
    "ethernet": Link("ethernet", 12.5, 20e-6),
}


@dataclass(frozen=True)
class Efficiency:
    """The engine's achieved shares of the hardware, and the costs that are not hardware at all.

    mfu: share of dense peak FLOP/s the GEMMs reach in a compute-bound pass.
    mbu: share of HBM bandwidth reached when a pass streams the weights and KV cache.
    prefill_overhead_s, decode_overhead_s: fixed cost of one step (scheduling, launches, sampling).
    decode_seq_overhead_s: cost per sequence in a decode batch (block tables, sampling, detokenizing).
    allreduce_latency_s: latency of one all-reduce per log2(TP) step (small messages: tree-like).
    comm_efficiency: share of the link bandwidth an all-reduce reaches below ALLREDUCE_SWITCH_BYTES.
    large_comm_efficiency: the same at or above that payload (None: as comm_efficiency).
    attention_efficiency: prefill attention kernels' FLOP rate as a share of the GEMMs' (mfu).
    """

    mfu: float
    mbu: float
    prefill_overhead_s: float
    decode_overhead_s: float
    decode_seq_overhead_s: float = 0.0
    allreduce_latency_s: float = 0.0
    comm_efficiency: float = 1.0
    large_comm_efficiency: float | None = None
    attention_efficiency: float = 1.0

    def __post_init__(self) -> None:
        for name in ("mfu", "mbu", "comm_efficiency", "large_comm_efficiency", "attention_efficiency"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise ConfigurationError(f"efficiency {name} must be in (0, 1], got {value}")
        for name in (
            "prefill_overhead_s",
            "decode_overhead_s",
            "decode_seq_overhead_s",
            "allreduce_latency_s",
        ):
            if getattr(self, name) < 0.0:
                raise ConfigurationError(f"efficiency {name} must be >= 0, got {getattr(self, name)}")

    @property
    def large_comm(self) -> float:
        """The all-reduce bandwidth share at or above the switch payload."""
        return self.comm_efficiency if self.large_comm_efficiency is None else self.large_comm_efficiency


# An all-reduce's payload at which the engine changes algorithm. In the Splitwise sweeps the per-token
# prefill cost at TP >= 4 steps up between passes whose payload (tokens x hidden x 2 bytes) is below
# 64 MiB and those at or above it - Llama-2-70B at 2,048 vs 4,096 tokens, BLOOM-176B (58.7 MB at 2,048)
# likewise - in prompt and batch sweeps alike, on A100 and H100, growing with TP as ring traffic does
# and not shrinking as attention would. vLLM's own all-reduce switches path at a payload size too
# (its custom kernel up to a size, NCCL above).
ALLREDUCE_SWITCH_BYTES = 64 * 2**20


# Fitted by `python bench/calibrate_perfmodel.py` (scipy least squares on the fourth power of
# log(predicted / measured) over data/reference/gpu_points.csv, less the points profiler/calibration.py
# excludes), 2026-11-27, rounded to three digits. Splitwise rows are engine "vllm", DistServe rows
# "distserve"; DistServe's OPT passes never reach the all-reduce switch size, so it keeps one comm_efficiency.
# fmt: off
_CALIBRATED: dict[tuple[str, str], Efficiency] = {
    ("A100-SXM-80GB", "vllm"): Efficiency(
        mfu=0.657, mbu=0.9, prefill_overhead_s=0.0209, decode_overhead_s=0.0109, decode_seq_overhead_s=0.000353,
        allreduce_latency_s=4.34e-05, comm_efficiency=0.382, large_comm_efficiency=0.129, attention_efficiency=1.0,
    ),
    ("H100-SXM-80GB", "vllm"): Efficiency(
        mfu=0.611, mbu=0.742, prefill_overhead_s=0.0172, decode_overhead_s=0.000698, decode_seq_overhead_s=0.000296,
        allreduce_latency_s=4.47e-05, comm_efficiency=0.738, large_comm_efficiency=0.179, attention_efficiency=0.309,
    ),
    ("A100-SXM-80GB", "distserve"): Efficiency(
        mfu=0.695, mbu=0.662, prefill_overhead_s=0.0092, decode_overhead_s=0.000822, decode_seq_overhead_s=5.23e-05,
        allreduce_latency_s=2.73e-05, comm_efficiency=0.331, attention_efficiency=0.904,
    ),
}
# fmt: on

# Tiers without reference points take the factors of the calibrated tier of the nearest architecture:
# H200 is H100's GH100 die with faster HBM; B200 and MI300X are newer parts whose kernels are closest to
# Hopper's; the Ampere and Ada PCIe cards (A10G, L4, L40S) run the same Ampere-era kernel families as A100.
_BORROWED_FROM: dict[str, str] = {
    "H200-SXM-141GB": "H100-SXM-80GB",
    "B200-SXM-180GB": "H100-SXM-80GB",
    "MI300X-192GB": "H100-SXM-80GB",
    "A10G-24GB": "A100-SXM-80GB",
    "L4-24GB": "A100-SXM-80GB",
    "L40S-48GB": "A100-SXM-80GB",
}
_RATIO_REFERENCE_TIER = "A100-SXM-80GB"


def default_efficiency(tier_name: str, engine: str = "vllm") -> Efficiency:
    """The calibrated factors for a tier and engine.

    A tier without reference points borrows those of the nearest calibrated architecture. An engine
    calibrated only on A100 (distserve) is carried to another tier by scaling that tier's vLLM factors
    by the engine's A100 ratio to vLLM, factor by factor.
    """
    catalog.tier(tier_name)
    if engine not in ENGINES:
        raise ConfigurationError(f"unknown engine {engine!r}; known engines: {', '.join(ENGINES)}")
    calibrated_tier = tier_name if (tier_name, "vllm") in _CALIBRATED else _BORROWED_FROM[tier_name]
    if (calibrated_tier, engine) in _CALIBRATED:
        return _CALIBRATED[(calibrated_tier, engine)]
    base = _CALIBRATED[(calibrated_tier, "vllm")]
    ref_engine = _CALIBRATED[(_RATIO_REFERENCE_TIER, engine)]
    ref_vllm = _CALIBRATED[(_RATIO_REFERENCE_TIER, "vllm")]

    def scaled(name: str, cap: float | None = None) -> float:
        ref: float = getattr(ref_vllm, name)
        value: float = getattr(base, name) * (getattr(ref_engine, name) / ref if ref else 1.0)
        return min(value, cap) if cap is not None else value

    return Efficiency(
        mfu=scaled("mfu", 0.95),
        mbu=scaled("mbu", 0.95),
        prefill_overhead_s=scaled("prefill_overhead_s"),
        decode_overhead_s=scaled("decode_overhead_s"),
        decode_seq_overhead_s=scaled("decode_seq_overhead_s"),
        allreduce_latency_s=scaled("allreduce_latency_s"),
        comm_efficiency=scaled("comm_efficiency", 1.0),
        large_comm_efficiency=None if ref_engine.large_comm_efficiency is None else scaled("large_comm", 1.0),
        attention_efficiency=scaled("attention_efficiency", 1.0),
    )
