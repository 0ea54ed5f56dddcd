"""What each page shows of a seeded fleet."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_overview_shows_cost_power_tokens_and_the_saving(fleet, as_viewer):
    body = as_viewer.get("/", {"window": "1h"}).content.decode()
    # 16 H100 GPUs at the seeded price and 16 A100s at theirs; 32 GPUs with a fresh reading.
    assert 'data-testid="cost-now">$' in body
    assert "32 GPUs reporting" in body
    assert 'data-testid="nodes-ready">4 / 4' in body
    for chart in ("chart-cost_usd_per_h", "chart-power_kw", "chart-gpu_util", "chart-tokens_per_s", "chart-pools",
                  "chart-attainment", "chart-saving"):
        assert f'data-figure-for="{chart}"' in body
    assert "plotly/plotly.min.js" in body


def test_a_window_that_makes_no_sense_falls_back_to_the_default(fleet, as_viewer):
    assert as_viewer.get("/", {"window": "1y"}).context["data"].window == "1d"


def test_the_fleet_shows_nodes_by_tier_with_their_workers(fleet, as_viewer):
    body = as_viewer.get("/fleet/", {"tier": "H100-SXM-80GB"}).content.decode()
    assert "gpu-000" in body
    assert "gpu-001" not in body
    assert "prefill · chat" in body
    assert "old-0" not in body  # stopped workers hold nothing


def test_a_node_shows_its_samples_and_assignment_history(fleet, as_viewer):
    response = as_viewer.get(f"/fleet/nodes/{fleet.nodes[0].name}/")
    body = response.content.decode()
    assert 'data-testid="assignments"' in body
    assert len(response.context["page"].object_list) == 2
    assert "chart-node-util" in body
    assert "chart-node-power" in body
    assert as_viewer.get("/fleet/nodes/no-such-node/").status_code == 404


def test_traffic_shows_class_confidence_and_drift(fleet, as_viewer):
    body = as_viewer.get("/traffic/", {"service": "chat", "span": "1d"}).content.decode()
    assert "balanced → prefill-heavy" in body
    for chart in ("chart-rate", "chart-lengths", "chart-class", "chart-prefix", "chart-phases"):
        assert f'data-figure-for="{chart}"' in body


def test_a_plan_shows_its_placement_baselines_and_diff(fleet, as_viewer):
    body = as_viewer.get(f"/plans/{fleet.draft.pk}/").content.decode()
    assert 'data-testid="placement"' in body
    assert "Colocated best single tier" in body
    assert f'Against the active plan <a href="/plans/{fleet.active.pk}/">#{fleet.active.pk}</a>' in body
    assert "chart-plan-baselines" in body


def test_a_rollout_shows_its_steps_and_the_canary_comparison(fleet, as_viewer):
    body = as_viewer.get(f"/plans/{fleet.rolling.pk}/").content.decode()
    assert "3 of 5 steps done" in body
    assert 'data-testid="canary-comparison"' in body
    assert "breaker closed" in body


def test_plans_filter_by_service_and_status(fleet, as_viewer):
    page = as_viewer.get("/plans/", {"service": "chat", "status": "draft"}).context["page"]
    assert [plan.pk for plan in page.object_list] == [fleet.draft.pk]
