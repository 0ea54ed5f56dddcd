"""Figures are plain JSON that cannot break out of their script element, and say so when there is no data."""

from __future__ import annotations

import json

from controlplane.console import figures


def test_text_in_a_figure_cannot_close_its_script_element():
    text = figures.rate([], [])
    assert "<" not in figures.gpu_heatmap(title="</script><script>alert(1)</script>", nodes=["n"], gpus=1,
                                          values={("n", 0): 0.5}, unit="", zmax=1, colorscale="Blues")
    assert json.loads(text)["layout"]["annotations"][0]["text"] == "No profiled windows yet"


def test_baselines_that_found_no_plan_are_left_out_of_the_bars():
    data = json.loads(figures.plan_against_baselines(
        {"cost_usd_per_h": 10.0, "power_kw": 2.0, "slo_attainment": 0.95},
        {"colocated_best_single_tier": {"cost_usd_per_h": 14.0, "power_kw": 3.0, "slo_attainment": 0.93},
         "disaggregated_single_tier": {"feasible": False, "reason": "no single tier"}},
    ))
    cost = data["data"][0]
    assert cost["x"] == ["this plan", "colocated best single tier"]
    assert cost["y"] == [10.0, 14.0]
