"""Infeasible requests answer with the constraint that binds and by how much, never with an exception."""

from __future__ import annotations

import re

import pytest

from controlplane.planning.core.baselines import plan
from controlplane.planning.core.inputs import Constraints, NodeInventory, PlanRequest, ServiceSpec, Workload
from controlplane.planning.core.solver import Infeasible
from profiler import catalog

LENGTHS = [(1000, 100), (400, 300), (2000, 50), (150, 600)] * 25


def nodes(tier: str = "H100-SXM-80GB", count: int = 2, gpus: int = 8, free: tuple[int, ...] | None = None):
    return tuple(
        NodeInventory(f"n{i}", catalog.tier(tier), gpus, tuple(range(gpus)) if free is None else free)
        for i in range(count)
    )


def request(model="llama-3.1-8b", ttft=1.0, tpot=0.1, rate=10.0, inventory=None, **constraints):
    arch = catalog.model(model)
    return PlanRequest(
        service=ServiceSpec("svc", arch, ttft_s=ttft, tpot_s=tpot),
        workload=Workload.of(rate, LENGTHS, max_context=arch.max_context),
        inventory=nodes() if inventory is None else inventory,
        constraints=Constraints(**constraints),
        verify=False,
    )


def test_a_tpot_no_tier_meets_names_the_fastest_step():
    answer = plan(request(model="llama-3.1-70b", tpot=0.005, inventory=nodes("H200-SXM-141GB")))
    assert isinstance(answer, Infeasible)
    assert answer.constraint == "tpot"
    assert answer.message.startswith("no tier meets TPOT 5 ms for llama-3.1-70b: the fastest decode step is")
    assert re.search(r"is [0-9.]+ ms on H200-SXM-141GB TP[248]$", answer.message)
    assert answer.shortfall > 0
    assert list(answer.fields) == ["tpot_slo_s"]


def test_a_ttft_no_tier_meets_names_the_fastest_prefill():
    answer = plan(request(ttft=0.01))
    assert isinstance(answer, Infeasible)
    assert answer.constraint == "ttft"
    assert "no tier meets TTFT 0.01 s for llama-3.1-8b: the fastest p95 prefill alone takes" in answer.message


def test_a_budget_too_small_says_how_short_it_is():
    feasible = plan(request())
    cheapest = feasible.evaluation.cost_usd_per_h
    answer = plan(request(budget_usd_per_h=1.0))
    assert isinstance(answer, Infeasible)
    assert answer.constraint == "budget"
    assert answer.shortfall == pytest.approx(cheapest - 1.0)
    assert answer.message == (
        f"budget $1.0/h is ${cheapest - 1.0:.1f}/h short of the cheapest feasible plan (${cheapest:.1f}/h)"
    )
    assert "budget_usd_per_h" in answer.fields


def test_a_power_cap_too_low_says_by_how_much():
    answer = plan(request(power_cap_kw=0.1))
    assert isinstance(answer, Infeasible)
    assert answer.constraint == "power_cap"
    assert answer.message.startswith("power cap 0.1 kW is ")
    assert answer.shortfall > 0
    assert "power_cap_kw" in answer.fields


def test_no_ready_nodes():
    answer = plan(request(inventory=()))
    assert (answer.constraint, answer.message) == ("inventory", "no ready nodes: the fleet has no node in status ready")


def test_nodes_with_no_free_gpu():
    answer = plan(request(inventory=nodes(free=())))
    assert answer.constraint == "gpus"
    assert answer.message == "the ready nodes have no free GPU"


def test_too_few_gpus_says_how_many_more():
    answer = plan(request(rate=400.0, inventory=nodes(count=1, gpus=2)))
    assert isinstance(answer, Infeasible)
    assert answer.constraint == "gpus"
    assert answer.message.startswith("not enough free GPUs: the load needs about")
    assert answer.shortfall >= 1
    assert "more than the 2 free" in answer.message


def test_tiers_the_fleet_lacks():
    answer = plan(request(allowed_tiers=("B200-SXM-180GB",)))
    assert answer.constraint == "inventory"
    assert "allowed_tiers" in answer.fields


def test_a_model_that_fits_no_allowed_tp():
    answer = plan(request(model="llama-3.1-70b", allowed_tp=(1,), inventory=nodes("L4-24GB")))
    assert answer.constraint == "model_fit"
    assert "llama-3.1-70b runs on no ready tier" in answer.message
