"""What a simulation is asked: the cluster (pools of instances per role, tier and TP), the SLO, the error type."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from profiler import catalog
from profiler.catalog import GpuTier, ModelArch
from profiler.errors import ConfigurationError, ProfilerError, UnknownModelError, UnknownTierError
from profiler.perfmodel import DTYPES, ENGINES, LINKS, PerfModel, default_efficiency

Role = Literal["prefill", "decode", "colocated"]
ROLES: tuple[str, ...] = ("prefill", "decode", "colocated")


class SimulationError(ProfilerError):
    """A simulation that cannot run as asked: the message says which input is wrong and why."""


@dataclass(frozen=True, kw_only=True)
class PoolSpec:
    """``count`` identical instances of one engine, each on ``tp`` GPUs of ``tier``, serving one role.

    prefill_scale, decode_scale: the perf model's corrections from live telemetry for this tier and TP
      (measured over predicted prefill pass and serving step times); 1.0 runs the calibrated model.
    """

    tier: GpuTier
    role: str
    tp: int = 1
    count: int = 1
    engine: str = "vllm"
    prefill_scale: float = 1.0
    decode_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise SimulationError(f"pool role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.tp < 1:
            raise SimulationError(f"pool tp must be >= 1, got {self.tp}")
        if self.count < 0:
            raise SimulationError(f"pool count must be >= 0, got {self.count}")
        if self.engine not in ENGINES:
            raise SimulationError(f"unknown engine {self.engine!r}; known engines: {', '.join(ENGINES)}")
        for name in ("prefill_scale", "decode_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise SimulationError(f"pool {name} must be a positive number, got {value}")

    @classmethod
    def of(cls, tier_name: str, *, role: str, count: int = 1, tp: int = 1, engine: str = "vllm") -> PoolSpec:
        """A pool of a catalog tier, by name (UnknownTierError lists the known ones)."""
        return cls(tier=catalog.tier(tier_name), role=role, tp=tp, count=count, engine=engine)

    @property
    def gpus(self) -> int:
        """GPUs the pool holds: instances times TP."""
        return self.count * self.tp

    @property
    def label(self) -> str:
        """``role tier xCOUNT TPn``, for messages and tables."""
        return f"{self.role} {self.tier.name} x{self.count} TP{self.tp}"

    def perf_model(self, model: ModelArch, dtype: str) -> PerfModel:
        """The perf model of one instance; a model that cannot run here raises naming the pool."""
        try:
            return PerfModel(
                model=model,
                tier=self.tier,
                tp=self.tp,
                dtype=dtype,
                efficiency=default_efficiency(self.tier.name, self.engine),
                prefill_scale=self.prefill_scale,
                decode_scale=self.decode_scale,
            )
        except (ConfigurationError, UnknownTierError, UnknownModelError) as exc:
            raise type(exc)(f"pool {self.label}: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class ClusterSpec:
    """A serving cluster for one model: either prefill and decode pools (disaggregated) or colocated pools.

    kv_link: the link a KV cache crosses from a prefill to a decode instance, a profiler.perfmodel.LINKS
      name; "nvlink" means the prefill tier's own scale-up link (same node).
    prefill_token_budget: most uncached prompt tokens batched into one prefill pass (a longer prompt
      runs alone); also the batch budget of colocated serving without chunking.
    chunked_prefill, chunk_tokens: colocated only. With chunking every step carries the running decodes
      plus prompt chunks up to ``chunk_tokens`` tokens in all (decodes count one each, as vLLM's
      max_num_batched_tokens does and Sarathi-Serve's token budget); without, a waiting prompt is
      prefilled in a pass of its own while the decodes wait (vLLM before chunked prefill).
    local_prefill_threshold: disaggregated only: prompts with at most this many uncached tokens are
      prefilled on the decode instance (chunked, in its decode steps) and cross no link.
    max_decode_batch: the engine's max_num_seqs: sequences running on one instance at once.
    """

    model: ModelArch
    pools: tuple[PoolSpec, ...]
    dtype: str = "bf16"
    kv_link: str = "nvlink"
    prefill_token_budget: int = 8192
    chunked_prefill: bool = True
    chunk_tokens: int = 512
    local_prefill_threshold: int = 0
    max_decode_batch: int = 256
    _roles: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pools = tuple(self.pools)
        object.__setattr__(self, "pools", pools)
        if self.dtype not in DTYPES:
            raise SimulationError(f"unknown dtype {self.dtype!r}; known: {', '.join(DTYPES)}")
        if self.kv_link != "nvlink" and self.kv_link not in LINKS:
            raise SimulationError(f"unknown kv_link {self.kv_link!r}; known links: {', '.join(LINKS)}")
        for name in ("prefill_token_budget", "chunk_tokens", "max_decode_batch"):
            if getattr(self, name) < 1:
                raise SimulationError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.local_prefill_threshold < 0:
            raise SimulationError(f"local_prefill_threshold must be >= 0, got {self.local_prefill_threshold}")
        roles = frozenset(pool.role for pool in pools if pool.count > 0)
        object.__setattr__(self, "_roles", roles)
        if not roles:
            raise SimulationError("the cluster has no instances: give at least one pool with count >= 1")
        if "colocated" in roles and roles != {"colocated"}:
            raise SimulationError(
                "a cluster is either colocated or disaggregated: it mixes colocated pools with "
                f"{' and '.join(sorted(roles - {'colocated'}))} pools; simulate them as two clusters"
            )
        if "colocated" not in roles:
            missing = [role for role in ("prefill", "decode") if role not in roles]
            if missing:
                raise SimulationError(
                    f"a disaggregated cluster needs prefill and decode pools; it has no {missing[0]} instance"
                )

    @property
    def disaggregated(self) -> bool:
        """True for prefill and decode pools, False for colocated ones."""
        return "colocated" not in self._roles

    @property
    def gpus(self) -> int:
        """GPUs in the whole cluster."""
        return sum(pool.gpus for pool in self.pools)

    def cost_usd_per_h(self, prices_usd_per_gpu_h: Mapping[str, float] | None = None) -> float:
        """What the cluster costs per hour, every GPU at its tier's price, busy or idle."""
        return sum(pool.gpus * tier_price(pool.tier, prices_usd_per_gpu_h) for pool in self.pools)


def tier_price(tier: GpuTier, prices_usd_per_gpu_h: Mapping[str, float] | None) -> float:
    """The price of a GPU of ``tier`` per hour: the given table's, else the tier's own."""
    if prices_usd_per_gpu_h is not None and tier.name in prices_usd_per_gpu_h:
        return float(prices_usd_per_gpu_h[tier.name])
    return tier.price_usd_per_gpu_h


@dataclass(frozen=True)
class Slo:
    """The latency targets one request must meet to count as served: time to first token and per token."""

    ttft_s: float
    tpot_s: float

    def __post_init__(self) -> None:
        for name in ("ttft_s", "tpot_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise SimulationError(f"SLO {name} must be a positive number of seconds, got {value}")
