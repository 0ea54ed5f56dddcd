"""The Grafana dashboard (docs/grafana/cleave.json) is valid JSON and charts every gauge the control plane
exposes, the routers' metrics and vLLM's engine metrics."""

from __future__ import annotations

import json
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana" / "cleave.json"
CONTROL_PLANE_GAUGES = ("cleave_cost_usd_per_hour", "cleave_power_watts", "cleave_gpu_utilization",
                        "cleave_slo_attainment", "cleave_nodes", "cleave_tokens_per_second")
ENGINE_METRICS = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:time_to_first_token_seconds_bucket",
                  "vllm:inter_token_latency_seconds_bucket", "vllm:kv_cache_usage_perc")


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_it_charts_the_control_planes_gauges_the_routers_and_the_engines():
    text = "\n".join(expressions())
    for name in (*CONTROL_PLANE_GAUGES, *ENGINE_METRICS, "cleave_router_requests_total"):
        assert name in text, name


def test_every_panel_reads_the_chosen_prometheus():
    dashboard = json.loads(DASHBOARD.read_text())
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"] if "datasource" in panel} == {"${datasource}"}
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
