"""The fleet: nodes by tier and status, their workers, a per-GPU heatmap, and each node's detail."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views import View

from controlplane.console import figures, selectors
from controlplane.console.forms import FleetFilterForm, WindowForm
from controlplane.console.views.base import ConsoleMixin, ConsolePage, live_response, paginate
from controlplane.fleet.selectors import node_list

NODES_PER_PAGE = 40
REFRESH_S = 10


def _fleet_parts(request: HttpRequest) -> dict[str, Any]:
    form = FleetFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    tier = filters.get("tier")
    page = paginate(request, selectors.fleet_nodes(tier=tier.name if tier else None, status=filters.get("status")),
                    NODES_PER_PAGE)
    grid = selectors.gpu_grid(list(page.object_list), now=timezone.now())
    charts = {
        "chart-gpu-util": figures.gpu_heatmap(
            title="GPU utilization (latest reading)", nodes=grid.nodes, gpus=grid.gpus, values=grid.utilization,
            unit="", zmax=1.0, colorscale="Blues",
        ),
        "chart-gpu-power": figures.gpu_heatmap(
            title="GPU power (latest reading, W)", nodes=grid.nodes, gpus=grid.gpus, values=grid.power_w,
            unit="W", zmax=grid.max_power_w, colorscale="YlOrRd",
        ),
    }
    return {"form": form, "page": page, "tiers": selectors.nodes_by_tier_and_status(), "figures": charts}


class FleetView(ConsolePage):
    template_name = "console/fleet.html"
    nav = "fleet"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(_fleet_parts(self.request), refresh_s=REFRESH_S,
                       live_url=f"{reverse('console:fleet-live')}?{self.request.GET.urlencode()}")
        return context


class FleetLiveView(ConsoleMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        parts = _fleet_parts(request)
        return live_response(
            figures=parts.pop("figures"),
            html={"fleet-tiers": render_to_string("console/_fleet_tiers.html", parts, request=request),
                  "fleet-nodes": render_to_string("console/_fleet_nodes.html", parts, request=request)},
        )


class NodeView(ConsolePage):
    template_name = "console/node.html"
    nav = "fleet"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        node = get_object_or_404(node_list(), name=kwargs["name"])
        form = WindowForm(self.request.GET or None)
        detail = selectors.node_detail(node=node, window=form.window_name(), now=timezone.now())
        buckets = [row[0] for row in detail.rollups]
        context.update(
            node=node, detail=detail, form=form,
            page=paginate(self.request, selectors.assignment_history(node), 20),
            figures={
                "chart-node-util": figures.gpu_lines(
                    title="GPU utilization (last hour)", percent=True,
                    rows=[(ts, gpu, util) for ts, gpu, util, _ in detail.gpu_samples]),
                "chart-node-power": figures.gpu_lines(
                    title="GPU power (last hour)", y_title="W",
                    rows=[(ts, gpu, power) for ts, gpu, _, power in detail.gpu_samples]),
                "chart-node-tokens": figures.named_lines(
                    title="Worker tokens per second (last hour)", y_title="tokens / s",
                    series=detail.tokens_by_worker(), empty="No worker samples in the last hour"),
                "chart-node-kv": figures.named_lines(
                    title="KV cache use (last hour)", percent=True, series=detail.kv_by_worker(),
                    empty="No worker samples in the last hour"),
                "chart-node-rollup": figures.named_lines(
                    title="Mean GPU utilization over the window", percent=True,
                    series={"utilization": (buckets, [row[1] for row in detail.rollups])} if buckets else {},
                    empty="No roll-ups in this window"),
            },
        )
        return context
