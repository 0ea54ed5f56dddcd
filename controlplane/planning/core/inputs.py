"""What the planner is asked: the service and its SLOs, the workload, the ready inventory, the constraints,
the objective, and the perf model's corrections from live telemetry. Frozen dataclasses, validated on
construction; PlanningError names the field that is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from profiler.catalog import GpuTier, ModelArch
from profiler.errors import ProfilerError
from profiler.perfmodel import DTYPES, Corrections, PerfModel, default_efficiency

Objective = Literal["cost", "power", "goodput_per_usd"]
OBJECTIVES: tuple[str, ...] = ("cost", "power", "goodput_per_usd")
ENGINES: tuple[str, ...] = ("vllm", "sim", "sglang")
# Degrees whose sizes divide one another: what makes per-tier GPU counting exact for placement.
TP_DEGREES: tuple[int, ...] = (1, 2, 4, 8)
DEFAULT_THRESHOLDS: tuple[int, ...] = (0, 128, 256, 512)


class PlanningError(ProfilerError):
    """Planner input that cannot be planned with; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ServiceSpec:
    """The service to plan: its model, dtype and SLOs (TTFT and TPOT at ``slo_percentile``)."""

    name: str
    model: ModelArch
    ttft_s: float
    tpot_s: float
    dtype: str = "bf16"
    attainment_target: float = 0.9
    slo_percentile: float = 0.9

    def __post_init__(self) -> None:
        if not self.name:
            raise PlanningError("the service needs a name", field="service")
        if self.dtype not in DTYPES:
            raise PlanningError(f"unknown dtype {self.dtype!r}; known: {', '.join(DTYPES)}", field="dtype")
        for name in ("ttft_s", "tpot_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise PlanningError(f"{name} must be a positive number of seconds, got {value}", field=name)
        for name in ("attainment_target", "slo_percentile"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise PlanningError(f"{name} must be in (0, 1], got {value}", field=name)

    @property
    def phase_quantile(self) -> float:
        """The quantile each phase's latency is sized for: half of the allowed misses go to each phase."""
        return 1.0 - (1.0 - self.attainment_target) / 2.0


@dataclass(frozen=True)
class Workload:
    """The traffic to serve: an arrival rate and a sample of request lengths (prompt, output, cached).

    Lengths are fitted to the model's context window by the caller (``Workload.of``).
    """

    rate_rps: float
    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    cached_prompt_tokens: tuple[int, ...]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_rps) and self.rate_rps > 0):
            raise PlanningError(f"rate_rps must be a positive number, got {self.rate_rps}", field="rate_rps")
        sizes = {len(self.prompt_tokens), len(self.output_tokens), len(self.cached_prompt_tokens)}
        if len(sizes) != 1:
            raise PlanningError("the length sample needs as many prompt, output and cached lengths", field="lengths")
        if not self.prompt_tokens:
            raise PlanningError("the length sample is empty", field="lengths")
        for prompt, output, cached in zip(
            self.prompt_tokens, self.output_tokens, self.cached_prompt_tokens, strict=True
        ):
            if prompt < 1 or output < 1 or not 0 <= cached <= prompt:
                raise PlanningError(
                    f"bad lengths in the sample: prompt {prompt}, output {output}, cached {cached} "
                    "(prompt and output must be >= 1, cached in [0, prompt])",
                    field="lengths",
                )

    @classmethod
    def of(
        cls,
        rate_rps: float,
        lengths: Sequence[tuple[int, int] | tuple[int, int, int]],
        *,
        max_context: int | None = None,
    ) -> Workload:
        """A workload from (prompt, output[, cached]) tuples, cut to ``max_context`` as an engine would."""
        prompts: list[int] = []
        outputs: list[int] = []
        cached: list[int] = []
        for row in lengths:
            prompt, output = max(int(row[0]), 1), max(int(row[1]), 1)
            hit = int(row[2]) if len(row) > 2 else 0
            if max_context is not None:
                prompt = min(prompt, max_context - 1)
                output = min(output, max_context - prompt)
            prompts.append(prompt)
            outputs.append(output)
            cached.append(min(max(hit, 0), prompt))
        return cls(rate_rps, tuple(prompts), tuple(outputs), tuple(cached))

    def with_rate(self, rate_rps: float) -> Workload:
        """The same lengths at another rate."""
        return Workload(rate_rps, self.prompt_tokens, self.output_tokens, self.cached_prompt_tokens)

    def subsample(self, size: int, seed: int = 0) -> Workload:
        """At most ``size`` of the lengths, drawn without replacement with a fixed seed."""
        if len(self.prompt_tokens) <= size:
            return self
        picks = np.sort(np.random.default_rng(seed).choice(len(self.prompt_tokens), size, replace=False))
        return Workload(
            self.rate_rps,
            tuple(self.prompt_tokens[i] for i in picks),
            tuple(self.output_tokens[i] for i in picks),
            tuple(self.cached_prompt_tokens[i] for i in picks),
        )

    @property
    def prefix_cache_share(self) -> float:
        """Share of prompt tokens the prefix cache holds."""
        return sum(self.cached_prompt_tokens) / max(sum(self.prompt_tokens), 1)

    def summary(self) -> dict[str, float]:
        """Rate, length percentiles and cache share, for a plan's inputs."""
        prompt = np.asarray(self.prompt_tokens)
        output = np.asarray(self.output_tokens)
        return {
            "rate_rps": self.rate_rps,
            "sample_size": float(len(prompt)),
            "prompt_tokens_p50": float(np.percentile(prompt, 50)),
            "prompt_tokens_p90": float(np.percentile(prompt, 90)),
            "prompt_tokens_mean": float(prompt.mean()),
            "output_tokens_p50": float(np.percentile(output, 50)),
            "output_tokens_p90": float(np.percentile(output, 90)),
            "output_tokens_mean": float(output.mean()),
            "prefix_cache_share": self.prefix_cache_share,
        }


@dataclass(frozen=True)
class PlacedWorker:
    """A worker of this service that runs now (from the active plan): kept in place where the new plan allows."""

    node: str
    name: str
    role: str
    tier: str
    tp: int
    gpu_ids: tuple[int, ...]
    port: int


@dataclass(frozen=True)
class NodeInventory:
    """One ready node: its tier, the GPUs free for this service, the ports other services hold there."""

    name: str
    tier: GpuTier
    gpu_count: int
    free_gpu_ids: tuple[int, ...]
    used_ports: tuple[int, ...] = ()
    engine: str = "vllm"

    def __post_init__(self) -> None:
        if len(set(self.free_gpu_ids)) != len(self.free_gpu_ids):
            raise PlanningError(f"node {self.name}: free GPU ids repeat", field="inventory")
        if any(not 0 <= gpu < self.gpu_count for gpu in self.free_gpu_ids):
            raise PlanningError(f"node {self.name}: a free GPU id is outside 0..{self.gpu_count - 1}", field="inventory")
        if self.engine not in ENGINES:
            raise PlanningError(f"node {self.name}: unknown engine {self.engine!r}", field="inventory")

    @property
    def free_gpus(self) -> int:
        return len(self.free_gpu_ids)


@dataclass(frozen=True)
class Constraints:
    """What a plan must respect, and the knobs of the search.

    headroom: capacity planned per unit of load (1.2: 20% spare) before queueing, on each phase.
    local_prefill_thresholds: uncached prompt lengths at or below which a disaggregated plan may prefill on
      the decode worker; each is tried and the best kept.
    kv_link: the link a KV cache crosses between a prefill and a decode node (perf model LINKS names).
    """

    budget_usd_per_h: float | None = None
    power_cap_kw: float | None = None
    min_instances_per_phase: int = 1
    allowed_tp: tuple[int, ...] = TP_DEGREES
    allowed_tiers: tuple[str, ...] | None = None
    headroom: float = 1.2
    local_prefill_thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    colocated_chunk_tokens: tuple[int, ...] = (512, 1024, 2048, 4096)
    disaggregated_chunk_tokens: int = 512
    prefill_token_budget: int = 8192
    max_decode_batch: int = 256
    kv_link: str = "infiniband"
    allow_colocated: bool = True
    allow_disaggregated: bool = True

    def __post_init__(self) -> None:
        if self.budget_usd_per_h is not None and not self.budget_usd_per_h > 0:
            raise PlanningError("budget_usd_per_h must be positive", field="budget_usd_per_h")
        if self.power_cap_kw is not None and not self.power_cap_kw > 0:
            raise PlanningError("power_cap_kw must be positive", field="power_cap_kw")
        if self.min_instances_per_phase < 0:
            raise PlanningError("min_instances_per_phase must be >= 0", field="min_instances_per_phase")
        if not self.allowed_tp or any(tp not in TP_DEGREES for tp in self.allowed_tp):
            raise PlanningError(f"allowed_tp must be a non-empty subset of {list(TP_DEGREES)}", field="allowed_tp")
        if self.allowed_tiers is not None and not self.allowed_tiers:
            raise PlanningError("allowed_tiers, when given, must name at least one tier", field="allowed_tiers")
        if not (math.isfinite(self.headroom) and 1.0 <= self.headroom <= 10.0):
            raise PlanningError("headroom must be in [1, 10]", field="headroom")
        if any(t < 0 for t in self.local_prefill_thresholds) or not self.local_prefill_thresholds:
            raise PlanningError("local_prefill_thresholds must be >= 0", field="local_prefill_thresholds")
        if not self.colocated_chunk_tokens or min(self.colocated_chunk_tokens) < 64:
            raise PlanningError("colocated_chunk_tokens must be >= 64", field="colocated_chunk_tokens")
        if not (self.allow_colocated or self.allow_disaggregated):
            raise PlanningError("allow colocated or disaggregated plans, or both", field="mode")

    @property
    def tp_degrees(self) -> tuple[int, ...]:
        """The allowed TP degrees, ascending."""
        return tuple(sorted(set(self.allowed_tp)))


@dataclass(frozen=True)
class ActivePlan:
    """The plan that runs now, as the planner compares against it: instances and routing threshold."""

    instances: tuple[tuple[str, int, str, int], ...]  # (tier, tp, role, count)
    local_prefill_threshold: int = 0
    chunk_tokens: int = 512
    workers: tuple[PlacedWorker, ...] = ()
    plan_id: int | None = None


@dataclass(frozen=True)
class PlanRequest:
    """Everything one planning run reads.

    corrections: measured over predicted step times per (tier, TP, phase), from live telemetry; the
      capacity model, the baselines and the simulator's verification all time workers with them.
    """

    service: ServiceSpec
    workload: Workload
    inventory: tuple[NodeInventory, ...]
    constraints: Constraints = field(default_factory=Constraints)
    objective: str = "cost"
    active: ActivePlan | None = None
    known_tiers: tuple[GpuTier, ...] = ()  # every tier's row (prices included), for the active plan's
    verify: bool = True
    sim_duration_s: float = 120.0
    sim_max_requests: int = 20000
    max_retries: int = 3
    seed: int = 0
    router_port: int = 8000
    worker_base_port: int = 8100
    corrections: Corrections = field(default_factory=Corrections)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise PlanningError(
                f"unknown objective {self.objective!r}; known: {', '.join(OBJECTIVES)}", field="objective"
            )
        names = [node.name for node in self.inventory]
        if len(set(names)) != len(names):
            raise PlanningError("node names in the inventory repeat", field="inventory")

    def perf_model(self, tier: GpuTier, tp: int) -> PerfModel:
        """One worker of the service on ``tp`` GPUs of ``tier``: calibrated vLLM factors, corrected.

        Raises the perf model's ConfigurationError (a ProfilerError) where the model does not fit.
        """
        service = self.service
        perf = PerfModel(
            model=service.model, tier=tier, tp=tp, dtype=service.dtype,
            efficiency=default_efficiency(tier.name, "vllm"),
        )
        return self.corrections.perf_model(perf)

    def usable_nodes(self) -> list[NodeInventory]:
        """The inventory's nodes of allowed tiers that have a free GPU."""
        allowed = self.constraints.allowed_tiers
        return [
            node for node in self.inventory
            if node.free_gpus > 0 and (allowed is None or node.tier.name in allowed)
        ]

    def tiers(self) -> dict[str, GpuTier]:
        """The tiers of the inventory the constraints allow, by name."""
        allowed = self.constraints.allowed_tiers
        return {
            node.tier.name: node.tier
            for node in self.inventory
            if allowed is None or node.tier.name in allowed
        }
