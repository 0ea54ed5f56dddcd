"""The performance model: how long a prefill pass, a decode step and a KV transfer take on one worker,
and what power its GPUs draw.

A worker is a (model, GPU tier, TP degree, dtype). Each forward pass is a roofline: the compute time
(FLOPs over the TP group's dense peak times MFU) against the memory time (weights and KV cache read
once over HBM bandwidth times MBU), whichever is larger; to that we add the tensor-parallel
all-reduces over the tier's scale-up link and the engine's per-step and per-sequence overheads. The
few efficiency factors are physical and fitted per tier and engine by ``bench/calibrate_perfmodel.py``
against ``data/reference/gpu_points.csv``; ``profiler/calibration.py`` replays those points.

The O(1) methods (``decode_step_s``, ``prefill_time_from_sums_s``, ``mixed_step_s``) are pure float
arithmetic over constants computed once in ``__post_init__``: simulators call them millions of times.

Live telemetry may correct the model per phase (``prefill_scale``, ``decode_scale``: measured over
predicted times of a (model, tier, TP), see ``Corrections``); a corrected model stretches its step times
by those factors and leaves memory and power as they were.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from profiler import catalog
from profiler.catalog import GB, GpuTier, ModelArch
from profiler.efficiency import ALLREDUCE_SWITCH_BYTES, ENGINES, LINKS, Efficiency, Link, default_efficiency
from profiler.errors import ConfigurationError, ProfilerError
from profiler.power import POWER_SHAPE, PowerShape, busy_power_w

# The calibrated factors and the power shape live in their own modules; these names stay importable here.
__all__ = [
    "ALLREDUCE_SWITCH_BYTES", "CORRECTED_PHASES", "DTYPES", "ENGINES", "GPU_MEMORY_UTILIZATION", "LINKS",
    "PHASES", "POWER_SHAPE", "Corrections", "Efficiency", "Link", "PerfModel", "PowerShape", "busy_power_w",
    "default_efficiency", "layer_matmul_params",
]

DTYPES = ("bf16", "fp16", "fp8")
PHASES = ("prefill", "decode", "idle")
CORRECTED_PHASES = ("prefill", "decode")

_DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1}
# Activations and all-reduce payloads stay 16-bit even when weights or KV are FP8.
_ACTIVATION_BYTES = 2

# vLLM's default --gpu-memory-utilization: the share of each GPU the engine may fill.
GPU_MEMORY_UTILIZATION = 0.9
# What vLLM keeps back besides weights and KV (its start-up profile run): the CUDA context, NCCL
# buffers and CUDA graphs (about 1 GiB), the activations of one max-size batch
# (--max-num-batched-tokens 8192, the V1 default for online serving) and fp32 logits for
# --max-num-seqs 256 sequences.
_NON_TORCH_BYTES = 2**30
_PROFILE_TOKENS = 8192
_PROFILE_SEQS = 256


def layer_matmul_params(arch: ModelArch) -> float:
    """Parameters in the transformer layers' matrices: those every token multiplies through.

    The catalog gives only the total. The layers hold q/o (heads x head_dim) and k/v (kv heads x
    head_dim) projections and an MLP of two matrices (OPT, BLOOM) or three (gated: Llama, Mistral, Qwen);
    the MLP count is the one that leaves one or two embedding tables (tied or untied) as the remainder.
    Embeddings are a lookup, and the LM head runs once per sequence, so neither counts per token.
    """
    attention = arch.hidden_size * arch.head_dim * (2 * arch.attention_heads + 2 * arch.kv_heads)
    embedding = arch.vocab_size * arch.hidden_size

    def misfit(mlp_matrices: int) -> float:
        layer_params = arch.layers * (attention + mlp_matrices * arch.hidden_size * arch.intermediate_size)
        tables = (arch.params - layer_params) / embedding
        return min(abs(tables - 1.0), abs(tables - 2.0))

    mlp_matrices = min((2, 3), key=misfit)
    return float(arch.layers * (attention + mlp_matrices * arch.hidden_size * arch.intermediate_size))


@dataclass(frozen=True)
class PerfModel:
    """Step times, KV capacity and power of one worker: a model on ``tp`` GPUs of one tier."""

    model: ModelArch
    tier: GpuTier
    tp: int = 1
    dtype: str = "bf16"
    kv_dtype: str | None = None
    efficiency: Efficiency | None = None
    # Measured over predicted, from live telemetry: a prefill pass takes prefill_scale times what the
    # roofline says; a decode or chunked-prefill step decode_scale times. 1.0: uncorrected.
    prefill_scale: float = 1.0
    decode_scale: float = 1.0
    # Constants of the hot path, computed once in __post_init__.
    _eff: Efficiency = field(init=False, repr=False, compare=False)
    _flops_per_token: float = field(init=False, repr=False, compare=False)
    _attn_prefill_flops_per_sq: float = field(init=False, repr=False, compare=False)
    _attn_decode_flops_per_ctx: float = field(init=False, repr=False, compare=False)
    _logit_flops_per_seq: float = field(init=False, repr=False, compare=False)
    _s_per_flop: float = field(init=False, repr=False, compare=False)
    _weight_read_s: float = field(init=False, repr=False, compare=False)
    _kv_read_s_per_token: float = field(init=False, repr=False, compare=False)
    _comm_fixed_s: float = field(init=False, repr=False, compare=False)
    _comm_s_per_token: float = field(init=False, repr=False, compare=False)
    _large_comm_s_per_token: float = field(init=False, repr=False, compare=False)
    _large_comm_tokens: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._validate()
        eff = self.efficiency if self.efficiency is not None else default_efficiency(self.tier.name)
        arch, gpu, tp = self.model, self.tier, self.tp
        attn_width = arch.attention_heads * arch.head_dim
        hbm = gpu.hbm_bytes_per_s * eff.mbu
        # Two all-reduces per layer (after attention and after the MLP) over the pass's activations:
        # a latency per log2(tp) step, and ring traffic of 2(tp-1)/tp of the payload per GPU.
        all_reduces = 2 * arch.layers if tp > 1 else 0
        ring_bytes_per_token = arch.hidden_size * _ACTIVATION_BYTES * 2.0 * (tp - 1) / tp
        link = gpu.link_bandwidth_gbps * GB
        constants = {
            "efficiency": eff,
            "_eff": eff,
            "_flops_per_token": 2.0 * layer_matmul_params(arch),
            # Causal attention: QK^T and PV are 2*s^2*width FLOPs each per layer, half of them masked.
            "_attn_prefill_flops_per_sq": 2.0 * arch.layers * attn_width / eff.attention_efficiency,
            "_attn_decode_flops_per_ctx": 4.0 * arch.layers * attn_width,
            "_logit_flops_per_seq": 2.0 * arch.vocab_size * arch.hidden_size,
            "_s_per_flop": 1.0 / (tp * gpu.peak_flops(self.dtype) * eff.mfu),
            "_weight_read_s": self.weight_bytes_per_gpu / hbm,
            "_kv_read_s_per_token": self.kv_bytes_per_token_per_gpu / hbm,
            "_comm_fixed_s": all_reduces * eff.allreduce_latency_s * math.log2(tp),
            "_comm_s_per_token": all_reduces * ring_bytes_per_token / (link * eff.comm_efficiency),
            "_large_comm_s_per_token": all_reduces * ring_bytes_per_token / (link * eff.large_comm),
            "_large_comm_tokens": ALLREDUCE_SWITCH_BYTES / (arch.hidden_size * _ACTIVATION_BYTES),
        }
        for name, value in constants.items():
            object.__setattr__(self, name, value)

    def _validate(self) -> None:
        arch, where = self.model, f"{self.model.name} on {self.tier.name} at TP{self.tp}"
        for name, value in (("dtype", self.dtype), ("kv_dtype", self.kv_dtype)):
            if value is not None and value not in DTYPES:
                raise ConfigurationError(f"unknown {name} {value!r}; known: {', '.join(DTYPES)}")
        if self.tp < 1:
            raise ConfigurationError(f"tp must be >= 1, got {self.tp}")
        for name in ("prefill_scale", "decode_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ConfigurationError(f"{name} must be a positive number, got {value}")
        if arch.attention_heads % self.tp:
            raise ConfigurationError(
                f"{where}: TP{self.tp} does not divide the {arch.attention_heads} attention heads"
            )
        if arch.kv_heads % self.tp and self.tp % arch.kv_heads:
            raise ConfigurationError(
                f"{where}: TP{self.tp} neither divides the {arch.kv_heads} KV heads nor is a multiple of them"
            )
        usable = self.tier.memory_bytes * GPU_MEMORY_UTILIZATION
        needed = self.weight_bytes_per_gpu + self.reserved_bytes_per_gpu
        if needed >= usable:
            raise ConfigurationError(
                f"{where} ({self.dtype}) does not fit: {self.weight_bytes_per_gpu / GB:.1f} GB of weights "
                f"and {self.reserved_bytes_per_gpu / GB:.1f} GB of activations per GPU against "
                f"{usable / GB:.1f} GB usable ({GPU_MEMORY_UTILIZATION:.0%} of {self.tier.memory_gb:g} GB); "
                f"short by {(needed - usable) / GB:.1f} GB per GPU"
            )

    @classmethod
    def for_names(
        cls, model: str, tier: str, tp: int = 1, dtype: str = "bf16", engine: str = "vllm"
    ) -> PerfModel:
        """A perf model from catalog names, with the engine's calibrated efficiency for that tier."""
        return cls(
            model=catalog.model(model),
            tier=catalog.tier(tier),
            tp=tp,
            dtype=dtype,
            efficiency=default_efficiency(tier, engine),
        )

    @property
    def factors(self) -> Efficiency:
        """The efficiency factors in use: those given, or the tier's calibrated vLLM defaults."""
        return self._eff

    def corrected(self, *, prefill: float = 1.0, decode: float = 1.0) -> PerfModel:
        """This model with its prefill passes ``prefill`` times and its serving steps ``decode`` times as long."""
        return replace(self, prefill_scale=prefill, decode_scale=decode)

    # --- memory ---

    @property
    def weight_bytes(self) -> float:
        """Bytes of the whole model's weights in ``dtype``."""
        return self.model.params * _DTYPE_BYTES[self.dtype]

    @property
    def weight_bytes_per_gpu(self) -> float:
        """Bytes of weights each GPU of the TP group holds (embeddings and LM head are sharded too)."""
        return self.weight_bytes / self.tp

    @property
    def kv_bytes_per_token(self) -> float:
        """Bytes of K and V one token adds to the cache of the whole model: 2 * L * n_kv * d_h * bytes."""
        arch = self.model
        return 2.0 * arch.layers * arch.kv_heads * arch.head_dim * _DTYPE_BYTES[self.kv_dtype or self.dtype]

    @property
    def kv_bytes_per_token_per_gpu(self) -> float:
        """Bytes one token's KV takes on each GPU; past TP = kv_heads each GPU keeps a replica of one head."""
        arch = self.model
        heads_per_gpu = max(arch.kv_heads / self.tp, 1.0)
        return 2.0 * arch.layers * heads_per_gpu * arch.head_dim * _DTYPE_BYTES[self.kv_dtype or self.dtype]

    @property
    def reserved_bytes_per_gpu(self) -> float:
        """Bytes each GPU keeps for the CUDA context, NCCL, CUDA graphs, activations and logits."""
        arch = self.model
        activations = _PROFILE_TOKENS * (4 * arch.hidden_size + 2 * arch.intermediate_size / self.tp)
        return _NON_TORCH_BYTES + activations * _ACTIVATION_BYTES + _PROFILE_SEQS * arch.vocab_size * 4.0

    @property
    def kv_capacity_tokens(self) -> int:
        """KV tokens that fit across the TP group once weights and the reserve are taken."""
        free_per_gpu = (
            self.tier.memory_bytes * GPU_MEMORY_UTILIZATION
            - self.weight_bytes_per_gpu
            - self.reserved_bytes_per_gpu
        )
        return max(int(free_per_gpu / self.kv_bytes_per_token_per_gpu), 0)

    # --- time ---

    def prefill_time_s(self, prompt_tokens: Sequence[int]) -> float:
        """Seconds of one forward pass over a batch of prompts of these lengths."""
        total, sum_sq = 0, 0.0
        for length in prompt_tokens:
            if length < 0:
                raise ProfilerError(f"prompt length must be >= 0, got {length}")
            total += length
            sum_sq += float(length) * length
        return self.prefill_time_from_sums_s(total, sum_sq, len(prompt_tokens))

    def prefill_time_from_sums_s(self, total_tokens: int, sum_sq_tokens: float, batch: int = 1) -> float:
        """Seconds of a prefill pass given the prompts' total length and sum of squared lengths; O(1)."""
        if total_tokens <= 0:
            return 0.0
        flops = (
            self._flops_per_token * total_tokens
            + self._attn_prefill_flops_per_sq * sum_sq_tokens
            + self._logit_flops_per_seq * batch
        )
        compute_s = flops * self._s_per_flop
        memory_s = self._weight_read_s + self._kv_read_s_per_token * total_tokens
        return (
            self._eff.prefill_overhead_s
            + (compute_s if compute_s > memory_s else memory_s)
            + self._comm_s(total_tokens)
        ) * self.prefill_scale

    def _comm_s(self, tokens: int) -> float:
        per_token = (
            self._comm_s_per_token if tokens < self._large_comm_tokens else self._large_comm_s_per_token
        )
        return self._comm_fixed_s + per_token * tokens

    def decode_step_s(self, batch: int, total_context_tokens: int) -> float:
        """Seconds of one decode iteration for ``batch`` sequences whose contexts sum as given; O(1)."""
        if batch <= 0:
            return 0.0
        flops = (
            self._flops_per_token + self._logit_flops_per_seq
        ) * batch + self._attn_decode_flops_per_ctx * total_context_tokens
        compute_s = flops * self._s_per_flop
        memory_s = self._weight_read_s + self._kv_read_s_per_token * total_context_tokens
        eff = self._eff
        return (
            eff.decode_overhead_s
            + eff.decode_seq_overhead_s * batch
            + (compute_s if compute_s > memory_s else memory_s)
            + self._comm_s(batch)
        ) * self.decode_scale

    def mixed_step_s(
        self, prefill_tokens: int, prefill_sum_sq: float, decode_batch: int, decode_context_tokens: int
    ) -> float:
        """Seconds of a chunked-prefill step: a prefill chunk and a decode batch in one forward pass; O(1)."""
        if prefill_tokens <= 0:
            return self.decode_step_s(decode_batch, decode_context_tokens)
        if decode_batch <= 0:
            return self.prefill_time_from_sums_s(prefill_tokens, prefill_sum_sq, 1)
        tokens = prefill_tokens + decode_batch
        flops = (
            self._flops_per_token * tokens
            + self._logit_flops_per_seq * (decode_batch + 1)
            + self._attn_prefill_flops_per_sq * prefill_sum_sq
            + self._attn_decode_flops_per_ctx * decode_context_tokens
        )
        compute_s = flops * self._s_per_flop
        memory_s = self._weight_read_s + self._kv_read_s_per_token * (decode_context_tokens + prefill_tokens)
        eff = self._eff
        # One step's fixed cost, with the chunk as one more sequence. The fitted prefill overhead is a
        # whole prompt's (the 2023 engines' per-request set-up); charging it on every chunk would make
        # chunked prefill look far worse than it runs (Sarathi-Serve), and it is the baseline.
        # A mixed step is a serving step, timed like the decode steps around it: the decode factor,
        # measured on the inter-token latency of the decode and colocated workers that run such
        # steps, corrects it.
        return (
            eff.decode_overhead_s
            + eff.decode_seq_overhead_s * (decode_batch + 1)
            + (compute_s if compute_s > memory_s else memory_s)
            + self._comm_s(tokens)
        ) * self.decode_scale

    def kv_transfer_s(self, prompt_tokens: int, link: str | Link = "nvlink") -> float:
        """Seconds to move a prompt's KV cache from this (prefill) worker to a decode worker.

        Each of the ``tp`` ranks sends its own shard over its own link, in parallel, as vLLM's KV
        connectors do. ``"nvlink"`` names the tier's scale-up link inside a node and runs at the tier's
        own speed (A100 300 GB/s, H100 450, B200 900; PCIe cards over their PCIe, MI300X over
        Infinity Fabric); other names are LINKS entries, and a Link is used as given.
        """
        if isinstance(link, Link):
            resolved = link
        elif link == "nvlink":
            resolved = Link(self.tier.link_kind, self.tier.link_bandwidth_gbps, LINKS["nvlink"].latency_s)
        elif link in LINKS:
            resolved = LINKS[link]
        else:
            raise ConfigurationError(f"unknown link {link!r}; known links: {', '.join(LINKS)}")
        if prompt_tokens <= 0:
            return 0.0
        return resolved.latency_s + prompt_tokens * self.kv_bytes_per_token_per_gpu / resolved.bytes_per_s

    def max_decode_batch(self, tpot_s: float, context_tokens: int) -> int:
        """The largest batch of sequences of this context whose decode step fits ``tpot_s`` and the KV cache."""
        per_seq = max(context_tokens, 1)
        high = self.kv_capacity_tokens // per_seq
        if high < 1 or self.decode_step_s(1, per_seq) > tpot_s:
            return 0
        low = 1
        while low < high:
            middle = (low + high + 1) // 2
            if self.decode_step_s(middle, middle * per_seq) <= tpot_s:
                low = middle
            else:
                high = middle - 1
        return low

    # --- power ---

    def busy_fraction(self, phase: str, batch: int = 1, tokens_per_seq: int = 1024) -> float:
        """Share of a step the GPUs are busy computing or moving data, not waiting on the host or on latency.

        The step's fixed and per-sequence overheads and its all-reduce latency are the waiting; the
        roofline and the all-reduce's data movement are the busy part. A correction stretches time, not
        the draw: the share is the uncorrected model's.
        """
        if phase == "prefill":
            total = batch * tokens_per_seq
            step = self.prefill_time_from_sums_s(total, float(batch) * tokens_per_seq * tokens_per_seq, batch)
            step /= self.prefill_scale
            waiting = self._eff.prefill_overhead_s
        elif phase == "decode":
            step = self.decode_step_s(batch, batch * tokens_per_seq) / self.decode_scale
            waiting = self._eff.decode_overhead_s + self._eff.decode_seq_overhead_s * batch
        else:
            raise ProfilerError(f"busy_fraction needs phase prefill or decode, got {phase!r}")
        return 1.0 - (waiting + self._comm_fixed_s) / step if step > 0 else 0.0

    def power_w(self, phase: str, utilization: float, batch: int = 1, *, tokens_per_seq: int = 1024) -> float:
        """Watts one GPU of the worker draws, between the tier's idle and TDP.

        ``utilization`` is the share of time the worker runs steps of ``phase`` (the rest it idles);
        ``batch`` and ``tokens_per_seq`` (prompt length in prefill, context in decode) shape the step.
        While a step runs the GPU draws in proportion to how busy the roofline keeps it: near TDP in a
        compute-bound prefill, less in a bandwidth-bound decode, and less again where overheads and
        all-reduce latency (larger at high TP) leave it waiting.
        """
        if phase not in PHASES:
            raise ProfilerError(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")
        if not 0.0 <= utilization <= 1.0:
            raise ProfilerError(f"utilization must be in [0, 1], got {utilization}")
        if phase == "idle" or utilization == 0.0 or batch <= 0:
            return self.tier.idle_w
        busy_w = busy_power_w(self.tier, phase, self.busy_fraction(phase, batch, tokens_per_seq))
        return self.tier.idle_w + utilization * (busy_w - self.tier.idle_w)


@dataclass(frozen=True)
class Corrections:
    """Measured over predicted step times per (tier, TP, phase): how far live workers run from the model.

    ``factors`` holds ``((tier, tp, phase), factor)`` pairs, phase ``prefill`` or ``decode``; a key not
    given is uncorrected (1.0). ``of`` builds one from a mapping; ``perf_model`` applies it.
    """

    factors: tuple[tuple[tuple[str, int, str], float], ...] = ()
    _by_key: dict[tuple[str, int, str], float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_key: dict[tuple[str, int, str], float] = {}
        for (tier_name, tp, phase), factor in self.factors:
            key = (str(tier_name), int(tp), str(phase))
            if phase not in CORRECTED_PHASES:
                raise ConfigurationError(
                    f"correction phase must be one of {', '.join(CORRECTED_PHASES)}, got {phase!r}"
                )
            if not (math.isfinite(factor) and factor > 0.0):
                raise ConfigurationError(f"correction of {tier_name} TP{tp} {phase} must be positive, got {factor}")
            if key in by_key:
                raise ConfigurationError(f"correction of {tier_name} TP{tp} {phase} is given twice")
            by_key[key] = float(factor)
        object.__setattr__(self, "factors", tuple(sorted(by_key.items())))
        object.__setattr__(self, "_by_key", by_key)

    @classmethod
    def of(
        cls, factors: Mapping[tuple[str, int, str], float] | Iterable[tuple[tuple[str, int, str], float]] = ()
    ) -> Corrections:
        """Corrections from ``{(tier, tp, phase): factor}`` or such pairs."""
        pairs = factors.items() if isinstance(factors, Mapping) else factors
        return cls(tuple((key, float(value)) for key, value in pairs))

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def factor(self, tier_name: str, tp: int, phase: str) -> float:
        """The factor of one (tier, TP, phase); 1.0 where none was measured."""
        return self._by_key.get((tier_name, tp, phase), 1.0)

    def perf_model(self, perf: PerfModel) -> PerfModel:
        """``perf`` with the factors of its tier and TP applied (itself where both are 1)."""
        prefill = self.factor(perf.tier.name, perf.tp, "prefill")
        decode = self.factor(perf.tier.name, perf.tp, "decode")
        if prefill == perf.prefill_scale and decode == perf.decode_scale:
            return perf
        return perf.corrected(prefill=prefill, decode=decode)

    def as_list(self) -> list[dict[str, str | int | float]]:
        """``[{tier, tp, phase, factor}]``, sorted: the JSON a plan's inputs record."""
        return [{"tier": key[0], "tp": key[1], "phase": key[2], "factor": value} for key, value in self.factors]
