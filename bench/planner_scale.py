"""How long a plan for the whole fleet takes: 10,000 GPUs in 1,250 nodes over 8 tiers, and how it grows.

    python bench/planner_scale.py [--json] [--results-dir DIR]      (or python -m bench.planner_scale)

The fleet is the catalog's eight tiers, 8-GPU nodes in turn, a few GPUs of some nodes held by other
services; the service is llama-3.1-70b (TTFT 2 s, TPOT 100 ms) on Azure conversation lengths at a rate that
takes about half the fleet. Timed: the whole planner without the simulator's verification (capacities of
every tier, TP and role; the MILPs of every subproblem; placement on every node; routing; the two
single-tier baselines), best of three runs. The simulator is left out because its cost grows with the
requests it serves, not with the fleet: verifying a plan this size means simulating thousands of
instances, which the planner does on the sample of traffic it plans for, not here.

Growth: the capacity and MILP work depends on tiers x TP degrees x roles, not on nodes (nodes are
aggregated per tier); only reading the inventory and placement walk the nodes, linearly. The table shows
the time at 1/8, 1/4, 1/2, 1 and 2 times the fleet.
Metric: plan_s_10k_gpus.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.common import add_json_flag, emit, format_table
from controlplane.planning.core.baselines import PlanResult, plan
from controlplane.planning.core.inputs import NodeInventory, PlanRequest, ServiceSpec, Workload
from profiler import catalog
from profiler.traces import read_trace

CONV = Path(__file__).resolve().parent.parent / "data" / "traces" / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv"
GPUS_PER_NODE = 8
RATE_PER_GPU = 0.8  # req/s per GPU of the fleet: plans that take about half of it
REPEATS = 3


def fleet(nodes: int) -> tuple[NodeInventory, ...]:
    tiers = sorted(catalog.TIERS)
    rng = np.random.default_rng(0)
    inventory = []
    for index in range(nodes):
        held = int(rng.integers(0, 3)) if index % 5 == 0 else 0  # some GPUs run other services
        inventory.append(NodeInventory(
            f"node-{index:05d}", catalog.tier(tiers[index % len(tiers)]), GPUS_PER_NODE,
            tuple(range(held, GPUS_PER_NODE)), used_ports=(8100,) if held else (),
        ))
    return tuple(inventory)


def time_plan(nodes: int, lengths: list[tuple[int, int]]) -> dict[str, Any]:
    model = catalog.model("llama-3.1-70b")
    inventory = fleet(nodes)
    gpus = nodes * GPUS_PER_NODE
    request = PlanRequest(
        service=ServiceSpec("bench", model, ttft_s=2.0, tpot_s=0.1),
        workload=Workload.of(RATE_PER_GPU * gpus, lengths, max_context=model.max_context),
        inventory=inventory,
        verify=False,
    )
    best = float("inf")
    result: PlanResult | None = None
    for _ in range(REPEATS):
        started = time.perf_counter()
        outcome = plan(request)
        best = min(best, time.perf_counter() - started)
        if not isinstance(outcome, PlanResult):
            raise SystemExit(f"{gpus} GPUs: no plan: {outcome.message}")
        result = outcome
    assert result is not None
    return {
        "nodes": nodes, "gpus": gpus, "tiers": len({n.tier.name for n in inventory}),
        "rate_rps": request.workload.rate_rps, "plan_s": round(best, 4), "plan_gpus": result.evaluation.gpus,
        "workers": len(result.placement.workers), "candidates": len(result.solution.subproblem.candidates),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_flag(parser)
    args = parser.parse_args(argv)
    records = list(read_trace(CONV, "azure"))
    picks = np.random.default_rng(0).choice(len(records), 2000, replace=False)
    lengths = [(records[i].prompt_tokens, records[i].output_tokens) for i in sorted(picks)]
    rows = [time_plan(nodes, lengths) for nodes in (156, 312, 625, 1250, 2500)]
    at_10k = next(row for row in rows if row["gpus"] == 10_000)
    metrics = {
        "plan_s_10k_gpus": at_10k["plan_s"],
        "plan_gpus_10k": at_10k["plan_gpus"],
        "plan_s_20k_gpus": rows[-1]["plan_s"],
        "plan_s_1250_gpus": rows[0]["plan_s"],
    }
    if not args.json:
        print(format_table(rows))
        print()
    emit("planner_scale", metrics, None, as_json=args.json, results_dir=args.results_dir)


if __name__ == "__main__":
    main()
