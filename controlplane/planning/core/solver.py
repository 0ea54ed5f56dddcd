"""The mixed-integer program: how many instances of each (tier, TP, role), within the inventory and the limits.

A plan is searched as several subproblems, each a small MILP over instance counts: one colocated problem per
chunk size, and one disaggregated problem per local-prefill threshold (the prefill pool serves only the
prompts above it). The best subproblem by the objective wins. Nodes are aggregated per tier: for every
allowed TP degree t, the GPUs taken by instances of TP >= t on a tier must fit the tier's t-aligned free
GPUs (the sum over its nodes of t * floor(free / t)). TP degrees are powers of two, so each divides the
next, and these constraints are exactly what placing the instances node by node needs (see placement.py):
the MILP is never feasible where placement is not.

Power in the program is an upper bound that stays linear: each pool carries the load at most 1/headroom of
its capacity, so an instance draws at most its power at that share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from profiler.catalog import GpuTier
from profiler.errors import ProfilerError
from profiler.perfmodel import PerfModel

from .capacity import (
    InstanceCapacity,
    LengthArrays,
    PrefillTimes,
    fastest_decode_step_s,
    prefill_capacity,
    prefill_pass_times,
    prefill_quantile_s,
    serving_capacity,
)
from .inputs import Constraints, NodeInventory, PlanRequest
from .placement import tier_slots

DISAGGREGATED, COLOCATED = "disaggregated", "colocated"
CAPACITY_SAMPLE = 600
_MIP_GAP = 1e-6
_TIE_BREAK = 1e-6


@dataclass(frozen=True)
class Subproblem:
    """One family of plans: a mode, its local-prefill threshold and chunk size, and the instance kinds."""

    mode: str
    local_prefill_threshold: int
    chunk_tokens: int
    candidates: tuple[InstanceCapacity, ...]

    def roles(self) -> tuple[str, ...]:
        return ("prefill", "decode") if self.mode == DISAGGREGATED else ("colocated",)


@dataclass(frozen=True)
class Limits:
    """The linear limits of one solve: required capacity, inventory, budget, power, minimum instances."""

    required_rps: float
    headroom: float
    slots_gpus: Mapping[str, Mapping[int, int]]  # tier -> tp -> t-aligned free GPUs
    budget_usd_per_h: float | None = None
    power_cap_kw: float | None = None
    min_instances_per_phase: int = 1


@dataclass(frozen=True)
class Solution:
    """Instance counts for one subproblem and what they come to under the capacity model."""

    subproblem: Subproblem
    counts: tuple[int, ...]
    objective: str
    objective_value: float
    cost_usd_per_h: float
    planned_power_kw: float
    gpus: int
    headroom: float

    def pools(self) -> list[tuple[InstanceCapacity, int]]:
        """The candidates with a non-zero count, with the count."""
        return [(c, n) for c, n in zip(self.subproblem.candidates, self.counts, strict=True) if n > 0]

    def capacity_rps(self, role: str) -> float:
        """The summed capacity of one role's instances (requests/s of the whole workload)."""
        return sum(c.capacity_rps * n for c, n in self.pools() if c.role == role)

    def goodput_rps(self) -> float:
        """The highest rate the plan carries at the SLO under the capacity model: its slowest phase's."""
        return min(self.capacity_rps(role) for role in self.subproblem.roles())

    def instances(self) -> list[dict[str, object]]:
        """``[{tier, tp, role, count}]``, largest first."""
        rows = [{"tier": c.tier, "tp": c.tp, "role": c.role, "count": n} for c, n in self.pools()]
        return sorted(rows, key=lambda r: (str(r["role"]), str(r["tier"]), -int(str(r["tp"]))))


@dataclass(frozen=True)
class Infeasible:
    """No plan: which constraint binds, by how much, and a message that says it in words."""

    constraint: str
    message: str
    shortfall: float | None = None
    fields: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"constraint": self.constraint, "message": self.message, "shortfall": self.shortfall,
                "fields": self.fields}


# --- candidates ---


@dataclass(frozen=True)
class _Worker:
    perf: PerfModel
    prefill: PrefillTimes | None


@dataclass(frozen=True)
class CandidateSet:
    """Every instance kind the inventory allows, with the per-(tier, TP) facts the diagnosis needs."""

    arrays: LengthArrays
    workers: tuple[_Worker, ...]
    unfit: tuple[str, ...]
    subproblems: tuple[Subproblem, ...]


def build_candidates(
    request: PlanRequest,
    tiers: Mapping[str, GpuTier],
    *,
    modes: Sequence[str] = (DISAGGREGATED, COLOCATED),
    thresholds: Sequence[int] | None = None,
) -> CandidateSet:
    """The subproblems of a request: capacities of every (tier, TP, role) that meets the SLO."""
    service, constraints = request.service, request.constraints
    sample = request.workload.subsample(CAPACITY_SAMPLE, seed=request.seed)
    arrays = LengthArrays.of(sample.prompt_tokens, sample.output_tokens, sample.cached_prompt_tokens)
    largest_node = _largest_node_by_tier(request.usable_nodes())
    workers: list[_Worker] = []
    unfit: list[str] = []
    for name in sorted(tiers):
        tier = tiers[name]
        for tp in constraints.tp_degrees:
            if tp > largest_node.get(name, 0):
                continue
            try:
                perf = request.perf_model(tier, tp)
            except ProfilerError as exc:
                unfit.append(f"{name} TP{tp}: {exc}")
                continue
            if perf.kv_capacity_tokens < 1:
                unfit.append(f"{name} TP{tp}: no memory left for the KV cache")
                continue
            prefill = prefill_pass_times(perf, arrays) if DISAGGREGATED in modes else None
            workers.append(_Worker(perf, prefill))
    quantile = service.phase_quantile
    subproblems: list[Subproblem] = []
    if COLOCATED in modes and constraints.allow_colocated:
        everything = np.ones(len(arrays), dtype=bool)
        for chunk in sorted(set(constraints.colocated_chunk_tokens)):
            found = [
                serving_capacity(
                    w.perf, arrays, everything, role="colocated", ttft_s=service.ttft_s, tpot_s=service.tpot_s,
                    quantile=quantile, chunk_tokens=chunk, max_seqs=constraints.max_decode_batch,
                )
                for w in workers
            ]
            subproblems.append(Subproblem(COLOCATED, 0, chunk, tuple(c for c in found if c is not None)))
    if DISAGGREGATED in modes and constraints.allow_disaggregated:
        chunk = constraints.disaggregated_chunk_tokens
        seen: set[bytes] = set()
        for threshold in sorted(set(thresholds if thresholds is not None else constraints.local_prefill_thresholds)):
            local = arrays.uncached <= threshold
            key = local.tobytes()
            if key in seen or local.all():
                continue  # the same split as a lower threshold, or no prompt left for the prefill pool
            seen.add(key)
            found = []
            for w in workers:
                assert w.prefill is not None
                found.append(prefill_capacity(
                    w.perf, arrays, w.prefill, ~local, ttft_s=service.ttft_s, quantile=quantile,
                    link=constraints.kv_link, token_budget=constraints.prefill_token_budget,
                ))
                found.append(serving_capacity(
                    w.perf, arrays, local, role="decode", ttft_s=service.ttft_s, tpot_s=service.tpot_s,
                    quantile=quantile, chunk_tokens=chunk, max_seqs=constraints.max_decode_batch,
                ))
            subproblems.append(Subproblem(DISAGGREGATED, threshold, chunk, tuple(c for c in found if c is not None)))
    return CandidateSet(arrays, tuple(workers), tuple(unfit), tuple(subproblems))


def _largest_node_by_tier(nodes: Iterable[NodeInventory]) -> dict[str, int]:
    largest: dict[str, int] = {}
    for node in nodes:
        largest[node.tier.name] = max(largest.get(node.tier.name, 0), node.free_gpus)
    return largest


# --- the program ---


def _coefficients(candidates: Sequence[InstanceCapacity], objective: str, headroom: float) -> np.ndarray:
    price = np.array([c.price_usd_per_h for c in candidates])
    power = np.array([c.power_w(1.0 / headroom) for c in candidates]) / 1000.0
    if objective == "power":
        return power + _TIE_BREAK * price
    return price + _TIE_BREAK * power


def solve_subproblem(sub: Subproblem, limits: Limits, objective: str) -> Solution | None:
    """The best counts for one subproblem within ``limits``, or None where none fit."""
    candidates = sub.candidates
    roles = sub.roles()
    if not candidates or any(all(c.role != role for c in candidates) for role in roles):
        return None
    count = len(candidates)
    rows: list[np.ndarray] = []
    lower: list[float] = []
    upper: list[float] = []

    def add(row: np.ndarray, low: float, high: float) -> None:
        rows.append(row)
        lower.append(low)
        upper.append(high)

    for role in roles:
        mask = np.array([c.role == role for c in candidates], dtype=float)
        add(mask * np.array([c.capacity_rps for c in candidates]), limits.required_rps, math.inf)
        if limits.min_instances_per_phase > 0:
            add(mask, float(limits.min_instances_per_phase), math.inf)
    instance_bound = np.zeros(count)
    for index, c in enumerate(candidates):
        instance_bound[index] = limits.slots_gpus.get(c.tier, {}).get(c.tp, 0) // c.tp
    for tier, per_tp in limits.slots_gpus.items():
        for tp, gpus in per_tp.items():
            row = np.array([float(c.tp) if c.tier == tier and c.tp >= tp else 0.0 for c in candidates])
            if row.any():
                add(row, -math.inf, float(gpus))
    price = np.array([c.price_usd_per_h for c in candidates])
    power_kw = np.array([c.power_w(1.0 / limits.headroom) for c in candidates]) / 1000.0
    if limits.budget_usd_per_h is not None:
        add(price, -math.inf, limits.budget_usd_per_h)
    if limits.power_cap_kw is not None:
        add(power_kw, -math.inf, limits.power_cap_kw)
    if objective == "goodput_per_usd":
        counts = _max_goodput_per_usd(sub, rows, lower, upper, instance_bound, price, power_kw)
    else:
        counts = _run(_coefficients(candidates, objective, limits.headroom), rows, lower, upper, instance_bound)
    if counts is None:
        return None
    return _solution(sub, counts, objective, price, power_kw, limits.headroom)


def _run(
    cost: np.ndarray, rows: list[np.ndarray], lower: list[float], upper: list[float], bound: np.ndarray,
    extra_continuous: int = 0,
) -> np.ndarray | None:
    integrality = np.concatenate([np.ones(len(bound)), np.zeros(extra_continuous)])
    result = milp(
        cost,
        integrality=integrality,
        bounds=Bounds(np.zeros(len(cost)), np.concatenate([bound, np.full(extra_continuous, np.inf)])),
        constraints=[LinearConstraint(np.vstack(rows), np.array(lower), np.array(upper))] if rows else [],
        options={"mip_rel_gap": _MIP_GAP, "time_limit": 30.0},
    )
    if result.x is None or result.status not in (0, 1):
        return None
    return np.asarray(np.round(result.x[: len(bound)]), dtype=np.int64)


def _max_goodput_per_usd(
    sub: Subproblem, rows: list[np.ndarray], lower: list[float], upper: list[float], bound: np.ndarray,
    price: np.ndarray, power_kw: np.ndarray,
) -> np.ndarray | None:
    """Dinkelbach's method: the ratio goodput / cost is maximized by a few MILPs of goodput - q * cost, each
    with goodput as a variable held below every phase's capacity."""
    counts = _run(price + _TIE_BREAK * power_kw, rows, lower, upper, bound)
    if counts is None:
        return None
    lower, upper = list(lower), list(upper)
    candidates = sub.candidates
    capacity = np.array([c.capacity_rps for c in candidates])
    extended = [np.append(row, 0.0) for row in rows]
    for role in sub.roles():
        mask = np.array([c.role == role for c in candidates], dtype=float)
        extended.append(np.append(-mask * capacity, 1.0))  # goodput <= this phase's capacity
        lower.append(-math.inf)
        upper.append(0.0)
    for _ in range(12):
        ratio = _goodput(sub, counts) / float(price @ counts)
        objective = np.append((ratio + _TIE_BREAK) * price, -1.0)  # minimize q * cost - goodput
        found = _run(objective, extended, lower, upper, bound, extra_continuous=1)
        if found is None:
            break
        if _goodput(sub, found) / float(price @ found) <= ratio * (1.0 + 1e-9):
            break
        counts = found
    return counts


def _goodput(sub: Subproblem, counts: np.ndarray) -> float:
    return min(
        sum(c.capacity_rps * int(n) for c, n in zip(sub.candidates, counts, strict=True) if c.role == role)
        for role in sub.roles()
    )


def _solution(
    sub: Subproblem, counts: np.ndarray, objective: str, price: np.ndarray, power_kw: np.ndarray, headroom: float
) -> Solution:
    cost = float(price @ counts)
    power = float(power_kw @ counts)
    if objective == "power":
        value = power
    elif objective == "goodput_per_usd":
        value = -_goodput(sub, counts) / cost if cost > 0 else 0.0
    else:
        value = cost
    return Solution(
        subproblem=sub,
        counts=tuple(int(n) for n in counts),
        objective=objective,
        objective_value=value,
        cost_usd_per_h=cost,
        planned_power_kw=power,
        gpus=int(sum(c.tp * int(n) for c, n in zip(sub.candidates, counts, strict=True))),
        headroom=headroom,
    )


def solution_of(sub: Subproblem, counts: Sequence[int], objective: str, headroom: float) -> Solution:
    """Given counts for a subproblem's candidates, what they come to under the capacity model."""
    price = np.array([c.price_usd_per_h for c in sub.candidates])
    power_kw = np.array([c.power_w(1.0 / headroom) for c in sub.candidates]) / 1000.0
    return _solution(sub, np.asarray(counts, dtype=np.int64), objective, price, power_kw, headroom)


def best_solution(
    subproblems: Iterable[Subproblem], limits: Limits, objective: str
) -> Solution | None:
    """The best solution over the subproblems (ties to the cheaper, then the first)."""
    best: Solution | None = None
    for sub in subproblems:
        found = solve_subproblem(sub, limits, objective)
        if found is None:
            continue
        if best is None or (found.objective_value, found.cost_usd_per_h) < (
            best.objective_value - 1e-9 * abs(best.objective_value), best.cost_usd_per_h
        ):
            best = found
    return best


def limits_for(request: PlanRequest, headroom: float, *, budget: bool = True, power: bool = True,
               slots: Mapping[str, Mapping[int, int]] | None = None) -> Limits:
    """The limits of a request at ``headroom`` (budget and power cap left out where asked)."""
    constraints: Constraints = request.constraints
    return Limits(
        required_rps=request.workload.rate_rps * headroom,
        headroom=headroom,
        slots_gpus=slots if slots is not None else tier_slots(request.usable_nodes(), constraints.tp_degrees),
        budget_usd_per_h=constraints.budget_usd_per_h if budget else None,
        power_cap_kw=constraints.power_cap_kw if power else None,
        min_instances_per_phase=constraints.min_instances_per_phase,
    )


def solve(request: PlanRequest, candidates: CandidateSet, headroom: float) -> Solution | Infeasible:
    """The best plan's counts at ``headroom``, or why there is none."""
    limits = limits_for(request, headroom)
    found = best_solution(candidates.subproblems, limits, request.objective)
    if found is not None:
        return found
    return diagnose(request, candidates, limits)


# --- why there is no plan ---


def diagnose(request: PlanRequest, candidates: CandidateSet, limits: Limits) -> Infeasible:
    """Which constraint makes the request infeasible, and by how much."""
    service, constraints = request.service, request.constraints
    allowed = constraints.allowed_tiers
    if not request.inventory:
        return Infeasible("inventory", "no ready nodes: the fleet has no node in status ready",
                          fields={"inventory": ["No ready nodes."]})
    nodes = request.usable_nodes()
    if not nodes:
        if allowed is not None and not any(node.tier.name in allowed for node in request.inventory):
            message = f"no ready node is of the allowed tiers ({', '.join(allowed)})"
            return Infeasible("inventory", message, fields={"allowed_tiers": [message]})
        message = "the ready nodes have no free GPU"
        return Infeasible("gpus", message, fields={"inventory": [message]})
    model = service.model.name
    if not candidates.workers:
        reasons = "; ".join(candidates.unfit[:3]) or "no TP degree fits a ready node"
        message = f"{model} runs on no ready tier at the allowed TP degrees: {reasons}"
        return Infeasible("model_fit", message, fields={"allowed_tp": [message]})
    serving_roles = ("decode", "colocated")
    has_serving = any(c.role in serving_roles for sub in candidates.subproblems for c in sub.candidates)
    if not has_serving:
        return _no_serving(service.tpot_s, model, candidates)
    has_first_token = any(
        c.role in ("prefill", "colocated") for sub in candidates.subproblems for c in sub.candidates
    )
    if not has_first_token:
        quantile = service.phase_quantile
        fastest = min(
            ((prefill_quantile_s(w.prefill, quantile), w) for w in candidates.workers if w.prefill is not None),
            key=lambda pair: pair[0], default=None,
        )
        detail = ""
        if fastest is not None:
            seconds, w = fastest
            detail = (f": the fastest p{quantile * 100:g} prefill alone takes {seconds:.3g} s on "
                      f"{w.perf.tier.name} TP{w.perf.tp}")
        message = f"no tier meets TTFT {service.ttft_s:g} s for {model}{detail}"
        return Infeasible("ttft", message, fields={"ttft_slo_s": [message]})
    return _binding_limit(request, candidates, limits)


def _no_serving(tpot_s: float, model: str, candidates: CandidateSet) -> Infeasible:
    fastest, where = math.inf, ""
    for w in candidates.workers:
        step = fastest_decode_step_s(w.perf, candidates.arrays)
        if step < fastest:
            fastest, where = step, f"{w.perf.tier.name} TP{w.perf.tp}"
    if fastest > tpot_s:
        message = (f"no tier meets TPOT {tpot_s * 1000:g} ms for {model}: the fastest decode step is "
                   f"{fastest * 1000:.3g} ms on {where}")
        return Infeasible("tpot", message, shortfall=fastest - tpot_s, fields={"tpot_slo_s": [message]})
    need = int(candidates.arrays.kv_max)
    best = max(candidates.workers, key=lambda w: w.perf.kv_capacity_tokens)
    message = (f"no tier holds the longest request ({need} tokens of prompt and output) in its KV cache within "
               f"TPOT {tpot_s * 1000:g} ms: the largest cache holds {best.perf.kv_capacity_tokens} tokens on "
               f"{best.perf.tier.name} TP{best.perf.tp}")
    return Infeasible("kv_capacity", message, fields={"allowed_tp": [message]})


def _binding_limit(request: PlanRequest, candidates: CandidateSet, limits: Limits) -> Infeasible:
    subproblems = candidates.subproblems
    open_limits = replace(limits, budget_usd_per_h=None, power_cap_kw=None)
    if best_solution(subproblems, open_limits, "cost") is None:
        return _gpu_shortfall(request, candidates, limits)
    budget, cap = limits.budget_usd_per_h, limits.power_cap_kw
    if budget is not None:
        cheapest = best_solution(subproblems, replace(limits, budget_usd_per_h=None), "cost")
        if cheapest is not None and cheapest.cost_usd_per_h > budget:
            short = cheapest.cost_usd_per_h - budget
            message = (f"budget ${budget:.1f}/h is ${short:.1f}/h short of the cheapest feasible plan "
                       f"(${cheapest.cost_usd_per_h:.1f}/h)")
            return Infeasible("budget", message, shortfall=short, fields={"budget_usd_per_h": [message]})
    if cap is not None:
        leanest = best_solution(subproblems, replace(limits, power_cap_kw=None), "power")
        if leanest is not None and leanest.planned_power_kw > cap:
            short = leanest.planned_power_kw - cap
            message = (f"power cap {cap:.1f} kW is {short:.1f} kW below the least power a feasible plan draws "
                       f"({leanest.planned_power_kw:.1f} kW)")
            return Infeasible("power_cap", message, shortfall=short, fields={"power_cap_kw": [message]})
    cheapest = best_solution(subproblems, replace(limits, budget_usd_per_h=None), "cost")
    if cheapest is not None and budget is not None:
        short = cheapest.cost_usd_per_h - budget
        message = (f"budget ${budget:.1f}/h and power cap {cap} kW cannot both hold: the cheapest plan within "
                   f"the power cap costs ${cheapest.cost_usd_per_h:.1f}/h, ${short:.1f}/h over the budget")
        return Infeasible("budget", message, shortfall=short,
                          fields={"budget_usd_per_h": [message], "power_cap_kw": [message]})
    message = "no plan fits the budget, the power cap and the inventory together"
    return Infeasible("limits", message, fields={"budget_usd_per_h": [message], "power_cap_kw": [message]})


def _gpu_shortfall(request: PlanRequest, candidates: CandidateSet, limits: Limits) -> Infeasible:
    free = sum(node.free_gpus for node in request.usable_nodes())
    by_gpus = [
        replace(sub, candidates=tuple(replace(c, price_usd_per_h=float(c.gpus)) for c in sub.candidates))
        for sub in candidates.subproblems
    ]
    open_limits = replace(limits, budget_usd_per_h=None, power_cap_kw=None)

    def smallest_at(scale: float) -> Solution | None:
        # every tier's free GPUs times ``scale``, in whole TP groups: how much more of the same fleet it takes
        slots = {
            tier: {tp: tp * int(gpus * scale // tp) for tp, gpus in per_tp.items()}
            for tier, per_tp in limits.slots_gpus.items()
        }
        return best_solution(by_gpus, replace(open_limits, slots_gpus=slots), "cost")

    low, high = 1.0, 2.0
    while smallest_at(high) is None:
        low, high = high, high * 4.0
        if high > 1e6:
            message = f"no plan fits the {free} free GPUs of the ready nodes, nor any multiple of them"
            return Infeasible("gpus", message, fields={"inventory": [message]})
    while high - low > 0.02 * low:
        middle = (low + high) / 2.0
        if smallest_at(middle) is None:
            low = middle
        else:
            high = middle
    smallest = smallest_at(high)
    assert smallest is not None
    short = max(smallest.gpus - free, math.ceil(free * (high - 1.0)))
    pools = ", ".join(f"{n}x {c.role} {c.tier} TP{c.tp}" for c, n in smallest.pools())
    message = (f"not enough free GPUs: the load needs about {high:.2f}x the free GPUs of the ready nodes' tiers, "
               f"about {short} more than the {free} free (the smallest such plan: {smallest.gpus} GPUs, {pools})")
    return Infeasible("gpus", message, shortfall=float(short), fields={"inventory": [message]})
