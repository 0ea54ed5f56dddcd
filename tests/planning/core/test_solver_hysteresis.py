"""The scheduled replan proposes only what saves enough or fixes an SLO miss, and moves a bounded step."""

from __future__ import annotations

import pytest

from controlplane.planning.core.hysteresis import (
    HysteresisPolicy,
    PlanFigures,
    bound_changes,
    should_propose,
)

POLICY = HysteresisPolicy(min_saving=0.10)


def figures(cost=10.0, power=5.0, meets=True, goodput=10.0):
    return PlanFigures(cost_usd_per_h=cost, power_kw=power, meets_slo=meets, goodput_rps=goodput)


def test_a_small_saving_is_not_worth_a_rollout():
    decision = should_propose(figures(10.0), figures(9.5), POLICY)
    assert not decision.propose
    assert decision.saving == pytest.approx(0.05)
    assert decision.reason == "saves 5.0% of the cost, below the 10% required"


def test_a_saving_of_the_required_share_is_proposed():
    decision = should_propose(figures(10.0), figures(9.0), POLICY)
    assert decision.propose
    assert decision.reason.startswith("saves 10.0% of the cost")


def test_an_slo_miss_is_fixed_whatever_it_costs():
    decision = should_propose(figures(10.0, meets=False), figures(14.0), POLICY)
    assert decision.propose
    assert "predicted to miss the SLO" in decision.reason


def test_a_candidate_that_misses_the_slo_is_never_proposed_over_one_that_holds():
    assert not should_propose(figures(10.0), figures(5.0, meets=False), POLICY).propose


def test_the_power_objective_compares_power():
    policy = HysteresisPolicy(min_saving=0.2, objective="power")
    assert should_propose(figures(10.0, power=5.0), figures(12.0, power=3.0), policy).propose
    assert not should_propose(figures(10.0, power=5.0), figures(5.0, power=4.5), policy).propose


def test_no_active_plan_proposes():
    assert should_propose(None, figures(), POLICY) == should_propose(None, figures(), POLICY)
    assert should_propose(None, figures(), POLICY).propose


def test_a_step_moves_at_most_n_instances_per_tier_each_way():
    current = {("H100", 1, "decode"): 10, ("L4", 1, "prefill"): 2}
    target = {("H100", 1, "decode"): 2, ("H100", 2, "prefill"): 5, ("L4", 1, "prefill"): 3}
    step = bound_changes(current, target, max_per_tier=3)
    assert step == {("H100", 1, "decode"): 7, ("H100", 2, "prefill"): 3, ("L4", 1, "prefill"): 3}
    assert bound_changes(step, target, 3) == {("H100", 1, "decode"): 4, ("H100", 2, "prefill"): 5, ("L4", 1, "prefill"): 3}


def test_steps_reach_the_target_and_never_overshoot():
    current = {("A", 1, "decode"): 9}
    target = {("A", 1, "decode"): 1, ("B", 4, "prefill"): 6}
    seen = [current]
    while seen[-1] != target:
        seen.append(bound_changes(seen[-1], target, 2))
        assert len(seen) < 10
    assert all(step.get(("B", 4, "prefill"), 0) <= 6 for step in seen)


def test_unbounded_goes_straight_to_the_target():
    assert bound_changes({("A", 1, "decode"): 9}, {("A", 1, "decode"): 1}, None) == {("A", 1, "decode"): 1}


def test_figures_come_from_predictions():
    data = {"cost_usd_per_h": 3.5, "power_kw": 1.25, "meets_slo": True, "goodput_rps": 8.0, "slo_attainment": 0.97}
    assert PlanFigures.of(data) == PlanFigures(3.5, 1.25, True, 8.0, 0.97)
