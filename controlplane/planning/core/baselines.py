"""A plan and the baselines beside it, each verified in the simulator: the planner's entry point, ``plan``.

The solver picks counts by the capacity model; the simulator then serves a sample of the actual traffic
(Poisson at the planned rate over the length sample, fixed seed) on them. A plan that misses the SLO
attainment target there is solved again with 15% more headroom, a bounded number of times; what the
simulator measured is what the predictions report.

Baselines, under the same objective, the same inventory and the same verification (budget and power cap
are left out: they are what the plan is compared on):
- colocated_best_single_tier: colocated workers with chunked prefill, on the one tier that does best;
- disaggregated_single_tier: prefill and decode pools on one tier, no local prefill (DistServe-style);
- active_plan: the plan that runs now, as it is, under the current workload.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from profiler import catalog
from profiler.catalog import GpuTier
from profiler.errors import ProfilerError

from .capacity import (
    InstanceCapacity,
    LengthArrays,
    prefill_capacity,
    prefill_pass_times,
    serving_capacity,
)
from .inputs import PlanRequest
from .placement import Placement, PlacementError, WorkerSpec, place
from .routing import routing_plan
from .sim import (
    ClusterSpec,
    LengthSampler,
    PoolSpec,
    Slo,
    poisson_requests,
    simulate,
)
from .solver import (
    CAPACITY_SAMPLE,
    COLOCATED,
    DISAGGREGATED,
    Infeasible,
    Limits,
    Solution,
    Subproblem,
    best_solution,
    build_candidates,
    diagnose,
    limits_for,
    solution_of,
)

HEADROOM_STEP = 1.15


@dataclass(frozen=True)
class Pool:
    """Instances of one kind in a plan being evaluated, with one instance's capacity (None: cannot meet the SLO)."""

    tier: GpuTier
    tp: int
    role: str
    count: int
    capacity: InstanceCapacity | None


@dataclass(frozen=True)
class Evaluation:
    """What a set of instances costs, draws and delivers: by the capacity model, and measured in simulation."""

    mode: str
    pools: tuple[Pool, ...]
    local_prefill_threshold: int
    chunk_tokens: int
    headroom: float | None
    rate_rps: float
    cost_usd_per_h: float
    power_kw: float
    gpus: int
    goodput_rps: float
    utilization: dict[str, float]
    usd_per_million_tokens: float
    tokens_per_joule: float
    simulated: bool
    slo_attainment: float | None = None
    ttft_p90_s: float | None = None
    tpot_p90_s: float | None = None
    meets_slo: bool = False
    note: str = ""

    def instances(self) -> list[dict[str, Any]]:
        return [{"tier": p.tier.name, "tp": p.tp, "role": p.role, "count": p.count} for p in self.pools if p.count]

    def as_dict(self) -> dict[str, Any]:
        """The JSON of a plan's predictions (and of each baseline)."""
        return {
            "mode": self.mode,
            "cost_usd_per_h": round(self.cost_usd_per_h, 4),
            "power_kw": round(self.power_kw, 4),
            "gpus": self.gpus,
            "rate_rps": self.rate_rps,
            "goodput_rps": round(self.goodput_rps, 4),
            "slo_attainment": self.slo_attainment,
            "meets_slo": self.meets_slo,
            "ttft_p90_s": self.ttft_p90_s,
            "tpot_p90_s": self.tpot_p90_s,
            "utilization": {role: round(value, 4) for role, value in self.utilization.items()},
            "usd_per_million_tokens": _finite(self.usd_per_million_tokens),
            "tokens_per_joule": _finite(self.tokens_per_joule),
            "local_prefill_threshold": self.local_prefill_threshold,
            "chunk_tokens": self.chunk_tokens,
            "headroom": self.headroom,
            "simulated": self.simulated,
            "instances": self.instances(),
            "pools": [
                {
                    "tier": p.tier.name, "tp": p.tp, "role": p.role, "count": p.count,
                    "capacity_rps": None if p.capacity is None else round(p.capacity.capacity_rps, 4),
                    "limit": None if p.capacity is None else p.capacity.limit,
                    "decode_batch": None if p.capacity is None else p.capacity.decode_batch,
                }
                for p in self.pools
            ],
            "note": self.note,
        }


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def evaluate(
    request: PlanRequest,
    pools: Sequence[Pool],
    *,
    mode: str,
    local_prefill_threshold: int,
    chunk_tokens: int,
    headroom: float | None,
) -> Evaluation:
    """Cost, power and capacity of ``pools`` under the request's workload, verified in the simulator if asked."""
    workload, service = request.workload, request.service
    rate = workload.rate_rps
    roles = ("colocated",) if mode == COLOCATED else ("prefill", "decode")
    capacity = {role: sum(p.count * p.capacity.capacity_rps for p in pools if p.role == role and p.capacity)
                for role in roles}
    share = {role: min(rate / capacity[role], 1.0) if capacity[role] > 0 else 1.0 for role in roles}
    power_w = sum(
        p.count * (p.capacity.power_w(share[p.role]) if p.capacity else p.tp * p.tier.tdp_w) for p in pools
    )
    cost = sum(p.count * p.tp * p.tier.price_usd_per_gpu_h for p in pools)
    gpus = sum(p.count * p.tp for p in pools)
    tokens_per_s = rate * (float(np.mean(workload.prompt_tokens)) + float(np.mean(workload.output_tokens)))
    goodput = min(capacity.values()) if capacity else 0.0
    evaluation = Evaluation(
        mode=mode, pools=tuple(pools), local_prefill_threshold=local_prefill_threshold, chunk_tokens=chunk_tokens,
        headroom=headroom, rate_rps=rate, cost_usd_per_h=cost, power_kw=power_w / 1000.0, gpus=gpus,
        goodput_rps=goodput, utilization=share,
        usd_per_million_tokens=cost / (tokens_per_s * 3600.0) * 1e6 if tokens_per_s > 0 else math.nan,
        tokens_per_joule=tokens_per_s / power_w if power_w > 0 else math.nan,
        simulated=False, meets_slo=goodput >= rate,
    )
    if not request.verify:
        return evaluation
    cluster = ClusterSpec(
        model=service.model, dtype=service.dtype,
        pools=tuple(_pool_spec(request, p) for p in pools if p.count),
        kv_link=request.constraints.kv_link, prefill_token_budget=request.constraints.prefill_token_budget,
        chunked_prefill=True, chunk_tokens=chunk_tokens,
        local_prefill_threshold=local_prefill_threshold if mode == DISAGGREGATED else 0,
        max_decode_batch=request.constraints.max_decode_batch,
    )
    duration = min(request.sim_duration_s, request.sim_max_requests / rate)
    try:
        requests = poisson_requests(
            rate, duration_s=duration, seed=request.seed,
            lengths=LengthSampler(workload.prompt_tokens, workload.output_tokens, workload.cached_prompt_tokens),
        )
        result = simulate(cluster, requests, Slo(service.ttft_s, service.tpot_s), seed=request.seed)
    except ProfilerError as exc:
        return replace(evaluation, simulated=True, slo_attainment=0.0, meets_slo=False,
                       note=f"the simulator could not serve it: {exc}")
    measured: dict[str, list[float]] = {}
    for pool in result.pools:
        measured.setdefault(pool.role, [0.0, 0.0])
        measured[pool.role][0] += pool.busy_s
        measured[pool.role][1] += pool.count * result.duration_s
    return replace(
        evaluation,
        simulated=True,
        slo_attainment=result.attainment,
        ttft_p90_s=result.ttft.p90,
        tpot_p90_s=result.tpot.p90,
        meets_slo=result.attainment >= service.attainment_target,
        power_kw=result.power_kw,
        utilization={role: busy / time if time > 0 else 0.0 for role, (busy, time) in measured.items()},
        usd_per_million_tokens=result.usd_per_million_tokens,
        tokens_per_joule=result.tokens_per_joule,
    )


def _pool_spec(request: PlanRequest, pool: Pool) -> PoolSpec:
    """A pool as the simulator takes it, timed with the request's corrections, as the capacity model was."""
    corrections = request.corrections
    return PoolSpec(
        tier=pool.tier, role=pool.role, tp=pool.tp, count=pool.count,
        prefill_scale=corrections.factor(pool.tier.name, pool.tp, "prefill"),
        decode_scale=corrections.factor(pool.tier.name, pool.tp, "decode"),
    )


def _pools_of(solution: Solution, tiers: dict[str, GpuTier]) -> list[Pool]:
    return [Pool(tiers[c.tier], c.tp, c.role, n, c) for c, n in solution.pools()]


@dataclass(frozen=True)
class Verified:
    """A solution, what it was measured to do, and every try on the way."""

    solution: Solution
    evaluation: Evaluation
    attempts: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def verified_solution(
    request: PlanRequest,
    subproblems: Sequence[Subproblem],
    limits: Callable[[float], Limits],
    tiers: dict[str, GpuTier],
) -> Verified | None:
    """Solve, simulate, and solve again with more headroom while the simulator says the SLO is missed."""
    headroom = request.constraints.headroom
    last: Verified | None = None
    attempts: list[dict[str, Any]] = []
    tries = 0
    while tries <= request.max_retries:
        found = best_solution(subproblems, limits(headroom), request.objective)
        if found is None:
            if last is not None:
                note = f"with {headroom:.2f}x headroom no plan fits the limits; the last one that did is kept"
                return replace(last, evaluation=replace(last.evaluation, note=note), attempts=tuple(attempts))
            return None
        same = last is not None and _key(found) == _key(last.solution)
        if not same:
            tries += 1
            evaluation = evaluate(
                request, _pools_of(found, tiers), mode=found.subproblem.mode,
                local_prefill_threshold=found.subproblem.local_prefill_threshold,
                chunk_tokens=found.subproblem.chunk_tokens, headroom=headroom,
            )
            attempts.append({"headroom": round(headroom, 4), "cost_usd_per_h": round(found.cost_usd_per_h, 4),
                             "gpus": found.gpus, "slo_attainment": evaluation.slo_attainment})
            last = Verified(found, evaluation)
            if evaluation.meets_slo:
                break
        headroom *= HEADROOM_STEP
        if headroom > 10.0:
            break
    assert last is not None
    if not last.evaluation.meets_slo and last.evaluation.simulated:
        note = (f"misses the {request.service.attainment_target:.0%} attainment target in simulation after "
                f"{len(attempts)} tries (last: {last.evaluation.slo_attainment:.1%}); more headroom or GPUs needed")
        last = replace(last, evaluation=replace(last.evaluation, note=note))
    return replace(last, attempts=tuple(attempts))


def _key(solution: Solution) -> tuple[object, ...]:
    sub = solution.subproblem
    return (sub.mode, sub.local_prefill_threshold, sub.chunk_tokens, solution.counts)


@dataclass(frozen=True)
class PlanResult:
    """A plan: its instances, placement, routing and predictions, with the baselines beside it."""

    verified: Verified
    placement: Placement
    routing: dict[str, Any]
    baselines: dict[str, dict[str, Any]]

    @property
    def solution(self) -> Solution:
        return self.verified.solution

    @property
    def evaluation(self) -> Evaluation:
        return self.verified.evaluation

    def instances(self) -> list[dict[str, object]]:
        return self.solution.instances()

    def predictions(self) -> dict[str, Any]:
        data = self.evaluation.as_dict()
        data["objective"] = self.solution.objective
        data["attempts"] = list(self.verified.attempts)
        return data


def plan(request: PlanRequest) -> PlanResult | Infeasible:
    """The best plan for the request, placed and routed, with its baselines; or why there is none."""
    tiers = request.tiers()
    candidates = build_candidates(request, tiers)
    verified = verified_solution(
        request, candidates.subproblems, lambda headroom: limits_for(request, headroom), tiers
    )
    if verified is None:
        return diagnose(request, candidates, limits_for(request, request.constraints.headroom))
    placement, routing = _placed(request, verified.solution)
    return PlanResult(verified, placement, routing, baselines(request, candidates.subproblems, tiers))


def _placed(request: PlanRequest, solution: Solution) -> tuple[Placement, dict[str, Any]]:
    service = request.service
    spec = WorkerSpec(
        service=service.name, model=service.model.name, dtype=service.dtype,
        engine_args=engine_args(request, solution.subproblem),
    )
    placement = place(
        [(c.tier, c.tp, c.role, n) for c, n in solution.pools()],
        request.usable_nodes(), spec,
        previous=request.active.workers if request.active is not None else (),
        router_port=request.router_port, base_port=request.worker_base_port,
    )
    routing = routing_plan(
        placement, {(c.tier, c.tp, c.role): c.capacity_rps for c in solution.subproblem.candidates},
        service=service.name, model=service.model.name,
        local_prefill_threshold=solution.subproblem.local_prefill_threshold,
    )
    return placement, routing


def plan_step(request: PlanRequest, target: PlanResult, counts: dict[tuple[str, int, str], int]) -> PlanResult | None:
    """A plan on the way to ``target``: its mode, threshold and chunk size with these counts, verified and
    placed. None where the counts hold a kind the target's family cannot run, or do not fit the nodes."""
    sub = target.solution.subproblem
    index = {(c.tier, c.tp, c.role): i for i, c in enumerate(sub.candidates)}
    if any(kind not in index for kind, count in counts.items() if count > 0):
        return None
    vector = [0] * len(sub.candidates)
    for kind, count in counts.items():
        if count > 0:
            vector[index[kind]] = count
    solution = solution_of(sub, vector, target.solution.objective, target.solution.headroom)
    if any(solution.capacity_rps(role) <= 0 for role in sub.roles()):
        return None
    try:
        placement, routing = _placed(request, solution)
    except PlacementError:
        return None
    tiers = request.tiers()
    evaluation = evaluate(
        request, _pools_of(solution, tiers), mode=sub.mode, local_prefill_threshold=sub.local_prefill_threshold,
        chunk_tokens=sub.chunk_tokens, headroom=target.solution.headroom,
    )
    return PlanResult(Verified(solution, evaluation), placement, routing, target.baselines)


def engine_args(request: PlanRequest, sub: Subproblem) -> dict[str, dict[str, str | int | float | bool]]:
    """Engine settings per role: the prefill pass budget, the chunk size and the most sequences at once.

    Chunked prefill needs no flag: vLLM's V1 engine (and the sim's colocated role) always chunk, by the
    token budget.
    """
    constraints = request.constraints
    serving: dict[str, str | int | float | bool] = {
        "max_num_batched_tokens": sub.chunk_tokens, "max_num_seqs": constraints.max_decode_batch,
    }
    return {
        "prefill": {"max_num_batched_tokens": constraints.prefill_token_budget,
                    "max_num_seqs": constraints.max_decode_batch},
        "decode": dict(serving),
        "colocated": dict(serving),
    }


def baselines(
    request: PlanRequest, subproblems: Sequence[Subproblem], tiers: dict[str, GpuTier]
) -> dict[str, dict[str, Any]]:
    """The colocated and disaggregated single-tier baselines and the active plan, evaluated alike."""
    open_limits = replace(request.constraints, budget_usd_per_h=None, power_cap_kw=None)
    open_request = replace(request, constraints=open_limits)
    result: dict[str, dict[str, Any]] = {
        "colocated_best_single_tier": _single_tier(
            open_request, [s for s in subproblems if s.mode == COLOCATED], tiers
        ),
        "disaggregated_single_tier": _single_tier(
            open_request,
            [s for s in subproblems if s.mode == DISAGGREGATED and s.local_prefill_threshold == 0],
            tiers,
        ),
    }
    if request.active is not None and request.active.instances:
        result["active_plan"] = active_evaluation(request).as_dict() | {
            "feasible": True, "plan_id": request.active.plan_id,
        }
    return result


def _single_tier(
    request: PlanRequest, subproblems: Sequence[Subproblem], tiers: dict[str, GpuTier]
) -> dict[str, Any]:
    limits = limits_for(request, request.constraints.headroom)
    best: tuple[Solution, str] | None = None
    for tier in sorted(tiers):
        only = [replace(s, candidates=tuple(c for c in s.candidates if c.tier == tier)) for s in subproblems]
        found = best_solution(only, limits, request.objective)
        if found is not None and (best is None or found.objective_value < best[0].objective_value):
            best = (found, tier)
    if best is None:
        return {"feasible": False, "reason": "no single tier of the inventory can carry the load within the SLO"}
    tier = best[1]
    only = [replace(s, candidates=tuple(c for c in s.candidates if c.tier == tier)) for s in subproblems]
    verified = verified_solution(request, only, lambda headroom: limits_for(request, headroom), tiers)
    assert verified is not None
    return verified.evaluation.as_dict() | {"feasible": True, "tier": tier, "attempts": list(verified.attempts)}


def active_evaluation(request: PlanRequest) -> Evaluation:
    """The active plan as it runs, under the request's workload (capacities recomputed for it)."""
    active = request.active
    assert active is not None
    sample = request.workload.subsample(CAPACITY_SAMPLE, seed=request.seed)
    arrays = LengthArrays.of(sample.prompt_tokens, sample.output_tokens, sample.cached_prompt_tokens)
    roles = {role for _, _, role, count in active.instances if count > 0}
    mode = COLOCATED if "colocated" in roles else DISAGGREGATED
    known = {tier.name: tier for tier in request.known_tiers} | request.tiers()
    pools: list[Pool] = []
    for tier_name, tp, role, count in active.instances:
        tier = known.get(tier_name) or catalog.tier(tier_name)
        capacity = _capacity(request, arrays, tier, tp, role, active.local_prefill_threshold, active.chunk_tokens)
        pools.append(Pool(tier, tp, role, count, capacity))
    return evaluate(request, pools, mode=mode, local_prefill_threshold=active.local_prefill_threshold,
                    chunk_tokens=active.chunk_tokens, headroom=None)


def _capacity(
    request: PlanRequest, arrays: LengthArrays, tier: GpuTier, tp: int, role: str, threshold: int, chunk: int
) -> InstanceCapacity | None:
    service, constraints = request.service, request.constraints
    try:
        perf = request.perf_model(tier, tp)
    except ProfilerError:
        return None
    local = arrays.uncached <= threshold if role != "colocated" else np.ones(len(arrays), dtype=bool)
    if role == "prefill":
        return prefill_capacity(perf, arrays, prefill_pass_times(perf, arrays), ~local, ttft_s=service.ttft_s,
                                quantile=service.phase_quantile, link=constraints.kv_link,
                                token_budget=constraints.prefill_token_budget)
    return serving_capacity(perf, arrays, local, role=role, ttft_s=service.ttft_s, tpot_s=service.tpot_s,
                            quantile=service.phase_quantile, chunk_tokens=chunk,
                            max_seqs=constraints.max_decode_batch)
