"""The live endpoints the overview, fleet and plan pages poll: figures to redraw, fragments to swap, and a
plan page stops polling once its rollout has ended."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from controlplane.planning.models import Rollout

pytestmark = pytest.mark.django_db


def test_the_overview_sends_its_figures_and_tiles(fleet, as_viewer):
    response = as_viewer.get("/overview/live", {"window": "1h"})
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = json.loads(response.content)
    assert {"chart-cost_usd_per_h", "chart-power_kw", "chart-gpu_util", "chart-tokens_per_s", "chart-pools",
            "chart-attainment", "chart-saving"} <= set(body["figures"])
    assert body["figures"]["chart-cost_usd_per_h"]["data"][0]["type"] == "scatter"
    assert 'data-testid="cost-now"' in body["html"]["overview-tiles"]


def test_the_fleet_sends_its_heatmaps_and_tables(fleet, as_viewer):
    body = json.loads(as_viewer.get("/fleet/live").content)
    assert body["figures"]["chart-gpu-util"]["data"][0]["type"] == "heatmap"
    assert fleet.nodes[0].name in body["html"]["fleet-nodes"]


def test_a_plan_page_polls_until_its_rollout_ends(fleet, as_viewer):
    body = json.loads(as_viewer.get(f"/plans/{fleet.rolling.pk}/live").content)
    assert body["done"] is False
    assert 'data-status="running"' in body["html"]["plan-rollout"]
    Rollout.objects.filter(pk=fleet.rollout.pk).update(status="rolled_back", reason="canary worse: attainment 0.7")
    body = json.loads(as_viewer.get(f"/plans/{fleet.rolling.pk}/live").content)
    assert body["done"] is True
    assert "Breaker tripped" in body["html"]["plan-rollout"]
    assert "canary worse: attainment 0.7" in body["html"]["plan-rollout"]


def test_anonymous_polls_are_sent_to_log_in(fleet):
    assert Client().get("/overview/live").status_code == 302
