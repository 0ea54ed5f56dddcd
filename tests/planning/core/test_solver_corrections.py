"""Corrections from live telemetry reach every part of a plan: the capacity model, the baselines and the
simulator that verifies them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controlplane.planning.core.baselines import PlanResult, active_evaluation, plan
from controlplane.planning.core.inputs import (
    ActivePlan,
    Constraints,
    NodeInventory,
    PlanRequest,
    ServiceSpec,
    Workload,
)
from controlplane.planning.core.sim import (
    ClusterSpec,
    PoolSpec,
    SimulationError,
    Slo,
    poisson_requests,
    simulate,
)
from profiler import catalog
from profiler.perfmodel import Corrections

MODEL = catalog.model("llama-3.1-8b")
H100 = "H100-SXM-80GB"
LENGTHS = ((900, 120), (300, 250), (2000, 40), (150, 400))
DECODE_TWICE_AS_SLOW = Corrections.of({(H100, tp, "decode"): 2.0 for tp in (1, 2, 4, 8)})


def request(**options) -> PlanRequest:
    return PlanRequest(
        service=ServiceSpec("chat", MODEL, ttft_s=1.0, tpot_s=0.05),
        workload=Workload.of(20.0, LENGTHS, max_context=MODEL.max_context),
        inventory=tuple(NodeInventory(f"h-{i}", catalog.tier(H100), 8, tuple(range(8))) for i in range(2)),
        constraints=Constraints(allow_colocated=False),
        sim_duration_s=60.0,
        **options,
    )


def decode_gpus(result: PlanResult) -> int:
    return sum(int(i["count"]) * int(i["tp"]) for i in result.instances() if i["role"] == "decode")


def test_decode_twice_as_slow_as_modelled_takes_more_decode_gpus_and_still_holds_the_slo():
    modelled = plan(request())
    measured = plan(request(corrections=DECODE_TWICE_AS_SLOW))
    assert isinstance(modelled, PlanResult)
    assert isinstance(measured, PlanResult)
    assert decode_gpus(measured) > decode_gpus(modelled)
    assert measured.evaluation.cost_usd_per_h > modelled.evaluation.cost_usd_per_h
    assert measured.predictions()["meets_slo"] is True


def test_the_baselines_are_sized_with_the_same_corrections():
    modelled = plan(request()).baselines["disaggregated_single_tier"]
    measured = plan(request(corrections=DECODE_TWICE_AS_SLOW)).baselines["disaggregated_single_tier"]
    assert measured["gpus"] > modelled["gpus"]


def test_the_simulator_times_a_corrected_pool_by_its_factors():
    # one request at a time, so each token is one step of a batch of one: twice as long
    requests = poisson_requests(0.1, count=20, seed=1, lengths=LENGTHS)

    def tpot_p90(decode_scale: float) -> float:
        cluster = ClusterSpec(model=MODEL, pools=(
            PoolSpec.of(H100, role="prefill"),
            replace(PoolSpec.of(H100, role="decode"), decode_scale=decode_scale),
        ))
        return simulate(cluster, requests, Slo(1.0, 0.1)).tpot.p90

    assert tpot_p90(2.0) == pytest.approx(2.0 * tpot_p90(1.0), rel=0.02)


def test_verification_of_the_running_plan_sees_the_slower_decode():
    running = request(active=ActivePlan(instances=((H100, 1, "prefill", 1), (H100, 1, "decode", 2))))
    as_modelled = active_evaluation(running)
    as_measured = active_evaluation(replace(running, corrections=DECODE_TWICE_AS_SLOW))
    assert as_measured.tpot_p90_s > 1.5 * (as_modelled.tpot_p90_s or 0.0) > 0.0
    assert as_measured.goodput_rps < as_modelled.goodput_rps


def test_a_pool_refuses_a_factor_that_is_not_a_positive_number():
    with pytest.raises(SimulationError, match="decode_scale must be a positive number"):
        PoolSpec(tier=catalog.tier(H100), role="decode", decode_scale=0.0)
