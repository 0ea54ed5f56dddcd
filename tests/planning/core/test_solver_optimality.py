"""The MILP finds the optimum: on inventories small enough to enumerate, exhaustive search over the same
capacity model finds nothing better (within 1%), for every objective, with and without budget and power caps."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from controlplane.planning.core.inputs import Constraints, NodeInventory, PlanRequest, ServiceSpec, Workload
from controlplane.planning.core.solver import (
    Limits,
    Subproblem,
    build_candidates,
    limits_for,
    solve_subproblem,
)
from profiler import catalog

TIERS = ["H100-SXM-80GB", "H200-SXM-141GB", "A100-SXM-80GB", "L40S-48GB", "L4-24GB"]
MODEL = catalog.model("llama-3.1-8b")


def lengths(seed: int, count: int = 150) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    prompts = rng.lognormal(np.log(rng.uniform(100, 1500)), 0.8, count).astype(int) + 1
    outputs = rng.lognormal(np.log(rng.uniform(10, 300)), 0.8, count).astype(int) + 1
    return [(min(int(p), 6000), min(int(o), 1500)) for p, o in zip(prompts, outputs, strict=True)]


def case(seed: int) -> tuple[PlanRequest, list[Subproblem]]:
    rng = np.random.default_rng(seed)
    two_gpu = seed % 3 == 0
    tiers = list(rng.choice(TIERS, 2 if two_gpu else 4, replace=False))
    nodes = [
        NodeInventory(f"{tier}-{i}", catalog.tier(tier), 2 if two_gpu else 1, (0, 1) if two_gpu else (0,))
        for tier in tiers
        for i in range(int(rng.integers(1, 5 if two_gpu else 9)))
    ]
    objective = ["cost", "power", "goodput_per_usd"][seed % 3 if seed % 4 else 0]
    request = PlanRequest(
        service=ServiceSpec("svc", MODEL, ttft_s=float(rng.uniform(0.5, 2.0)), tpot_s=float(rng.uniform(0.04, 0.15))),
        workload=Workload.of(1.0, lengths(seed), max_context=MODEL.max_context),
        inventory=tuple(nodes),
        constraints=Constraints(
            allowed_tp=(1, 2) if two_gpu else (1,), local_prefill_thresholds=(0, 256), colocated_chunk_tokens=(1024,),
        ),
        objective=objective,
        verify=False,
    )
    candidates = build_candidates(request, request.tiers())
    return request, candidates.subproblems


def exhaustive(sub: Subproblem, limits: Limits, objective: str) -> float | None:
    """The best objective over every count vector the limits allow, by enumeration (meet in the middle)."""
    candidates = sub.candidates
    roles = sub.roles()
    tiers = sorted({c.tier for c in candidates})
    blocks = []
    for tier in tiers:
        index = [i for i, c in enumerate(candidates) if c.tier == tier]
        slots = limits.slots_gpus[tier]
        ranges = [range(slots[candidates[i].tp] // candidates[i].tp + 1) for i in index]
        rows = []
        for counts in itertools.product(*ranges):
            if all(sum(candidates[i].tp * n for i, n in zip(index, counts, strict=True) if candidates[i].tp >= tp)
                   <= gpus for tp, gpus in slots.items()):
                full = np.zeros(len(candidates))
                full[index] = counts
                rows.append(full)
        blocks.append(np.array(rows))
    if any(len(block) == 0 for block in blocks):
        return None

    def product(parts: list[np.ndarray]) -> np.ndarray:
        combined = np.zeros((1, len(candidates)))
        for part in parts:
            combined = (combined[:, None, :] + part[None, :, :]).reshape(-1, len(candidates))
        return combined

    half = len(blocks) // 2
    left, right = product(blocks[:half]), product(blocks[half:])
    capacity = np.array([c.capacity_rps for c in candidates])
    price = np.array([c.price_usd_per_h for c in candidates])
    power = np.array([c.power_w(1.0 / limits.headroom) for c in candidates]) / 1000.0
    masks = {role: np.array([c.role == role for c in candidates], dtype=float) for role in roles}
    metrics = np.column_stack(
        [price, power]
        + [masks[role] * capacity for role in roles]
        + [masks[role] for role in roles]
    )
    left_m, right_m = left @ metrics, right @ metrics
    best = math.inf
    for row in left_m:
        total = row + right_m
        cost, watts = total[:, 0], total[:, 1]
        caps = total[:, 2 : 2 + len(roles)]
        counts = total[:, 2 + len(roles) :]
        ok = (caps >= limits.required_rps - 1e-9).all(axis=1) & (counts >= limits.min_instances_per_phase).all(axis=1)
        if limits.budget_usd_per_h is not None:
            ok &= cost <= limits.budget_usd_per_h + 1e-9
        if limits.power_cap_kw is not None:
            ok &= watts <= limits.power_cap_kw + 1e-9
        if not ok.any():
            continue
        if objective == "cost":
            value = cost[ok].min()
        elif objective == "power":
            value = watts[ok].min()
        else:
            value = (-caps[ok].min(axis=1) / cost[ok]).min()
        best = min(best, float(value))
    return None if math.isinf(best) else best


@pytest.mark.parametrize("seed", range(24))
def test_the_milp_is_within_one_percent_of_exhaustive_search(seed):
    request, subproblems = case(seed)
    rng = np.random.default_rng(1000 + seed)
    base = limits_for(request, 1.2)
    solved_any = False
    for sub in subproblems:
        if len(sub.candidates) > 8:
            sub = replace(sub, candidates=sub.candidates[:8])
        capacity = sum(c.capacity_rps * base.slots_gpus[c.tier][c.tp] // c.tp for c in sub.candidates) / len(sub.roles())
        limits = replace(base, required_rps=float(rng.uniform(0.05, 0.6)) * capacity)
        if seed % 2:
            limits = replace(limits, budget_usd_per_h=float(rng.uniform(5, 40)), power_cap_kw=float(rng.uniform(1, 8)))
        expected = exhaustive(sub, limits, request.objective)
        found = solve_subproblem(sub, limits, request.objective)
        assert (found is None) == (expected is None), (sub.mode, expected, found)
        if found is None:
            continue
        solved_any = True
        assert found.objective_value <= expected + 0.01 * abs(expected) + 1e-9
        assert found.objective_value >= expected - 1e-6 * abs(expected) - 1e-9  # the enumeration is exhaustive
    assert solved_any or seed % 2


def test_the_counts_respect_every_limit():
    request, subproblems = case(5)
    limits = replace(limits_for(request, 1.2), required_rps=2.0, budget_usd_per_h=30.0)
    for sub in subproblems:
        found = solve_subproblem(sub, limits, "cost")
        if found is None:
            continue
        for role in sub.roles():
            assert found.capacity_rps(role) >= 2.0 - 1e-9
        assert found.cost_usd_per_h <= 30.0 + 1e-9
        for tier, per_tp in limits.slots_gpus.items():
            for tp, gpus in per_tp.items():
                used = sum(c.tp * n for c, n in found.pools() if c.tier == tier and c.tp >= tp)
                assert used <= gpus
