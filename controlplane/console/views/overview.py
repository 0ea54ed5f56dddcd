"""The overview: what the fleet costs, draws and delivers, now and over the last hour, day or week."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views import View

from controlplane.console import figures, selectors
from controlplane.console.forms import WindowForm
from controlplane.console.views.base import ConsoleMixin, ConsolePage, live_response

REFRESH_S = 10


def _overview_parts(request: HttpRequest) -> tuple[WindowForm, selectors.Overview, dict[str, str]]:
    form = WindowForm(request.GET or None)
    data = selectors.overview(window=form.window_name(), now=timezone.now())
    charts = {f"chart-{metric}": figures.time_series(series) for metric, series in data.series.items()}
    charts["chart-pools"] = figures.pool_utilization(data.summary.utilization_by_pool)
    charts["chart-attainment"] = figures.attainment(data.summary.attainment)
    charts["chart-saving"] = figures.saving(data.summary.saving_vs_colocated)
    return form, data, charts


class OverviewView(ConsolePage):
    template_name = "console/overview.html"
    nav = "overview"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form, data, charts = _overview_parts(self.request)
        context.update(
            form=form, data=data, figures=charts, refresh_s=REFRESH_S,
            live_url=f"{reverse('console:overview-live')}?window={data.window}",
        )
        return context


class OverviewLiveView(ConsoleMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        _, data, charts = _overview_parts(request)
        tiles = render_to_string("console/_overview_tiles.html", {"data": data}, request=request)
        return live_response(figures=charts, html={"overview-tiles": tiles})
