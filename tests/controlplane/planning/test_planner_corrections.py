"""The planner times workers with the perf model's live corrections for the service's model, and records them
in the plan's inputs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.planning.planner import PlanParams, plan_create
from controlplane.telemetry.models import PerfCorrection
from tests.factories import NodeFactory, ServiceFactory, tier

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
H100 = "H100-SXM-80GB"
LENGTHS = ((900, 120), (300, 250), (2000, 40), (150, 400))


@pytest.fixture
def fleet(db):
    for name in ("a", "b"):
        NodeFactory(name=name, status="ready", tier=tier(H100))


def correct(model_name, phase, factor, *, tiers=(H100,), tps=(1, 2, 4, 8)):
    PerfCorrection.objects.bulk_create([
        PerfCorrection(model_name=model_name, tier=name, tp=tp, phase=phase, factor=factor, samples=40, updated_at=NOW,
                       last_observed=NOW)
        for name in tiers for tp in tps
    ])


def serving_gpus(plan) -> int:
    return sum(i["count"] * i["tp"] for i in plan.instances if i["role"] in ("decode", "colocated"))


def planned(service):
    return plan_create(actor=None, service=service, params=PlanParams(source="explicit", rate_rps=20.0, lengths=LENGTHS))


def test_a_decode_twice_as_slow_as_modelled_is_planned_with_more_decode_gpus(fleet):
    service = ServiceFactory(tpot_slo_s=0.02)
    modelled = planned(service)
    correct("llama-3.1-8b", "decode", 2.0)
    measured = planned(service)
    assert serving_gpus(measured) > serving_gpus(modelled)
    assert measured.predicted_cost_usd_per_h > modelled.predicted_cost_usd_per_h
    assert modelled.inputs["perf_model"]["corrections"] == []
    recorded = measured.inputs["perf_model"]["corrections"]
    assert {(c["tier"], c["tp"], c["phase"], c["factor"]) for c in recorded} == {
        (H100, tp, "decode", 2.0) for tp in (1, 2, 4, 8)
    }


def test_only_the_corrections_of_the_service_model_apply(fleet):
    correct("llama-3.1-70b", "decode", 2.0)
    plan = planned(ServiceFactory(tpot_slo_s=0.02))
    assert plan.inputs["perf_model"]["corrections"] == []


def test_an_operator_may_plan_without_them(fleet, settings):
    settings.PERF_CORRECTION_APPLY = False
    correct("llama-3.1-8b", "decode", 2.0)
    service = ServiceFactory(tpot_slo_s=0.02)
    plan = planned(service)
    assert plan.inputs["perf_model"]["corrections"] == []
    settings.PERF_CORRECTION_APPLY = True
    assert serving_gpus(planned(service)) > serving_gpus(plan)
