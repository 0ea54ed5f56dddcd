"""The catalog: GPU tiers and model architectures as plain data.

This module is the one source of truth for hardware and model numbers. The perf model reads it,
node agents read it to simulate GPUs, and the control plane's data migration seeds the database
from it (operators then edit prices there). Every number carries its source in ``source``.

Peak TFLOPS are *dense* (no 2:4 sparsity). Memory is the marketed size, read as GiB. Link bandwidth is the GPU's scale-up link, one
direction, in GB/s (NVLink for SXM parts, PCIe Gen4 x16 for PCIe cards, Infinity Fabric for
MI300X). Prices are indicative on-demand list prices per GPU-hour; operators set their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from profiler.errors import UnknownModelError, UnknownTierError

GB = 10**9
GIB = 2**30


@dataclass(frozen=True)
class GpuTier:
    name: str
    vendor: str
    bf16_tflops: float
    fp8_tflops: float | None
    hbm_bandwidth_gbps: float
    memory_gb: float
    tdp_w: float
    idle_w: float
    link_bandwidth_gbps: float
    link_kind: str
    price_usd_per_gpu_h: float
    source: str

    @property
    def memory_bytes(self) -> float:
        # Vendors' "80 GB" on these parts is binary: nvidia-smi shows an A100-80GB as 81,920 MiB.
        return self.memory_gb * GIB

    @property
    def hbm_bytes_per_s(self) -> float:
        return self.hbm_bandwidth_gbps * GB

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for a weight dtype; FP8 falls back to BF16 where the GPU has none."""
        if dtype == "fp8" and self.fp8_tflops is not None:
            return self.fp8_tflops * 1e12
        return self.bf16_tflops * 1e12


@dataclass(frozen=True)
class ModelArch:
    name: str
    params_b: float
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_context: int
    source: str

    @property
    def params(self) -> float:
        return self.params_b * 1e9


_NVIDIA_PRICE = "price: indicative on-demand cloud list price per GPU-hour, 2025 (Lambda/AWS/GCP pages)"

TIERS: dict[str, GpuTier] = {
    tier.name: tier
    for tier in (
        GpuTier(
            name="H100-SXM-80GB",
            vendor="nvidia",
            bf16_tflops=989.4,
            fp8_tflops=1978.9,
            hbm_bandwidth_gbps=3350,
            memory_gb=80,
            tdp_w=700,
            idle_w=75,
            link_bandwidth_gbps=450,
            link_kind="nvlink",
            price_usd_per_gpu_h=3.00,
            source=(
                "NVIDIA H100 Tensor Core GPU datasheet (2023): SXM5 989 TF BF16 / 1979 TF FP8 dense, "
                "3.35 TB/s HBM3, 80 GB, 700 W, NVLink4 900 GB/s bidirectional; idle ~75 W from "
                "nvidia-smi readings reported on DGX H100; " + _NVIDIA_PRICE
            ),
        ),
        GpuTier(
            name="H200-SXM-141GB",
            vendor="nvidia",
            bf16_tflops=989.4,
            fp8_tflops=1978.9,
            hbm_bandwidth_gbps=4800,
            memory_gb=141,
            tdp_w=700,
            idle_w=80,
            link_bandwidth_gbps=450,
            link_kind="nvlink",
            price_usd_per_gpu_h=3.80,
            source=(
                "NVIDIA H200 datasheet (2024): same compute as H100 SXM, 4.8 TB/s HBM3e, 141 GB, "
                "up to 700 W, NVLink4 900 GB/s bidirectional; idle estimated as H100's; " + _NVIDIA_PRICE
            ),
        ),
        GpuTier(
            name="B200-SXM-180GB",
            vendor="nvidia",
            bf16_tflops=2250,
            fp8_tflops=4500,
            hbm_bandwidth_gbps=8000,
            memory_gb=180,
            tdp_w=1000,
            idle_w=140,
            link_bandwidth_gbps=900,
            link_kind="nvlink",
            price_usd_per_gpu_h=5.50,
            source=(
                "NVIDIA DGX B200 / HGX B200 datasheet (2024-2025): 2.25 PF BF16 and 4.5 PF FP8 dense "
                "per GPU, 8 TB/s HBM3e, 180 GB (1,440 GB per 8 GPUs), 1,000 W, NVLink5 1.8 TB/s "
                "bidirectional; idle estimated; " + _NVIDIA_PRICE
            ),
        ),
        GpuTier(
            name="A100-SXM-80GB",
            vendor="nvidia",
            bf16_tflops=312,
            fp8_tflops=None,
            hbm_bandwidth_gbps=2039,
            memory_gb=80,
            tdp_w=400,
            idle_w=55,
            link_bandwidth_gbps=300,
            link_kind="nvlink",
            price_usd_per_gpu_h=1.80,
            source=(
                "NVIDIA A100 Tensor Core GPU datasheet (2021): 312 TF BF16 dense, no FP8, 2,039 GB/s "
                "HBM2e, 80 GB, 400 W, NVLink3 600 GB/s bidirectional; idle ~55 W from nvidia-smi "
                "readings reported on DGX A100; " + _NVIDIA_PRICE
            ),
        ),
        GpuTier(
            name="L40S-48GB",
            vendor="nvidia",
            bf16_tflops=362.05,
            fp8_tflops=733,
            hbm_bandwidth_gbps=864,
            memory_gb=48,
            tdp_w=350,
            idle_w=35,
            link_bandwidth_gbps=32,
            link_kind="pcie",
            price_usd_per_gpu_h=1.10,
            source=(
                "NVIDIA L40S datasheet (2023): 362 TF BF16 and 733 TF FP8 dense (half the sparse "
                "figures), 864 GB/s GDDR6, 48 GB, 350 W, PCIe Gen4 x16 (32 GB/s each way), no NVLink; "
                "idle estimated; " + _NVIDIA_PRICE
            ),
        ),
        GpuTier(
            name="L4-24GB",
            vendor="nvidia",
            bf16_tflops=121,
            fp8_tflops=242.5,
            hbm_bandwidth_gbps=300,
            memory_gb=24,
            tdp_w=72,
            idle_w=16,
            link_bandwidth_gbps=32,
            link_kind="pcie",
            price_usd_per_gpu_h=0.70,
            source=(
                "NVIDIA L4 datasheet (2023): 121 TF BF16 and 242.5 TF FP8 dense (half the sparse "
                "figures), 300 GB/s GDDR6, 24 GB, 72 W, PCIe Gen4 x16; idle estimated; " + _NVIDIA_PRICE
            ),
        ),
        GpuTier(
            name="A10G-24GB",
            vendor="nvidia",
            bf16_tflops=125,
            fp8_tflops=None,
            hbm_bandwidth_gbps=600,
            memory_gb=24,
            tdp_w=300,
            idle_w=25,
            link_bandwidth_gbps=32,
            link_kind="pcie",
            price_usd_per_gpu_h=1.01,
            source=(
                "NVIDIA A10 datasheet (2021), which AWS's A10G follows (NVIDIA publishes no separate "
                "A10G sheet): 125 TF BF16 dense, no FP8, 600 GB/s GDDR6, 24 GB; 300 W as AWS g5 "
                "reports for A10G; PCIe Gen4 x16; idle estimated; price: AWS g5.xlarge on-demand, "
                "us-east-1, 2025"
            ),
        ),
        GpuTier(
            name="MI300X-192GB",
            vendor="amd",
            bf16_tflops=1307.4,
            fp8_tflops=2614.9,
            hbm_bandwidth_gbps=5300,
            memory_gb=192,
            tdp_w=750,
            idle_w=140,
            link_bandwidth_gbps=448,
            link_kind="infinity-fabric",
            price_usd_per_gpu_h=3.00,
            source=(
                "AMD Instinct MI300X datasheet (2023): 1,307.4 TF BF16 and 2,614.9 TF FP8 dense, "
                "5.3 TB/s HBM3, 192 GB, 750 W, Infinity Fabric 896 GB/s aggregate; idle estimated; "
                "price: indicative on-demand cloud list price per GPU-hour, 2025"
            ),
        ),
    )
}

_HF = "published config.json on the Hugging Face Hub"

MODELS: dict[str, ModelArch] = {
    model.name: model
    for model in (
        ModelArch("llama-3.1-8b", 8.03, 32, 4096, 32, 8, 128, 14336, 128256, 131072,
                  f"meta-llama/Llama-3.1-8B {_HF}"),
        ModelArch("llama-3.1-70b", 70.6, 80, 8192, 64, 8, 128, 28672, 128256, 131072,
                  f"meta-llama/Llama-3.1-70B {_HF}"),
        ModelArch("llama-2-7b", 6.74, 32, 4096, 32, 32, 128, 11008, 32000, 4096,
                  f"meta-llama/Llama-2-7b-hf {_HF}"),
        ModelArch("llama-2-70b", 68.98, 80, 8192, 64, 8, 128, 28672, 32000, 4096,
                  f"meta-llama/Llama-2-70b-hf {_HF}"),
        ModelArch("mistral-7b", 7.24, 32, 4096, 32, 8, 128, 14336, 32000, 32768,
                  f"mistralai/Mistral-7B-v0.1 {_HF}"),
        ModelArch("qwen2.5-32b", 32.76, 64, 5120, 40, 8, 128, 27648, 152064, 32768,
                  f"Qwen/Qwen2.5-32B {_HF}"),
        ModelArch("opt-13b", 12.85, 40, 5120, 40, 40, 128, 20480, 50272, 2048,
                  f"facebook/opt-13b {_HF}"),
        ModelArch("opt-66b", 65.7, 64, 9216, 72, 72, 128, 36864, 50272, 2048,
                  f"facebook/opt-66b {_HF}"),
        ModelArch("bloom-176b", 176.2, 70, 14336, 112, 112, 128, 57344, 250880, 2048,
                  f"bigscience/bloom {_HF}"),
    )
}


def tier(name: str) -> GpuTier:
    """The catalog tier of that name, or UnknownTierError listing the known ones."""
    try:
        return TIERS[name]
    except KeyError:
        raise UnknownTierError(f"unknown GPU tier {name!r}; known tiers: {', '.join(sorted(TIERS))}") from None


def model(name: str) -> ModelArch:
    """The catalog model of that name, or UnknownModelError listing the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None
