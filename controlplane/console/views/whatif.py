"""What-if: plan a workload (a rate and lengths, or a trace) under constraints, against the baselines,
without touching the fleet. Saving the answer as a draft plan is a tick of the form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views import View

from controlplane.common.errors import ApplicationError
from controlplane.console import figures, selectors
from controlplane.console.forms import WhatIfForm, add_service_errors
from controlplane.console.permissions import Action, capabilities
from controlplane.console.views.base import ConsoleMixin
from controlplane.planning.core.baselines import PlanResult
from controlplane.planning.diff import plan_diff
from controlplane.planning.models import Plan
from controlplane.planning.planner import Computed, PlanParams, plan_compute, plan_save


def _params(data: dict[str, Any], trace_path: Path | None) -> PlanParams:
    tiers = tuple(tier.name for tier in data["allowed_tiers"]) or None
    common = {"objective": data["objective"], "budget_usd_per_h": data.get("budget_usd_per_h"),
              "power_cap_kw": data.get("power_cap_kw"), "allowed_tiers": tiers, "rate_rps": data.get("rate_rps")}
    if data.get("trace") is not None:
        return PlanParams(source="trace", trace_path=trace_path, trace_format=data["trace_format"],
                          trace_name=data["trace"].name[:200], **common)
    return PlanParams(
        source="explicit", prompt_tokens_p50=data["prompt_tokens_p50"], prompt_tokens_p90=data.get("prompt_tokens_p90"),
        output_tokens_p50=data["output_tokens_p50"], output_tokens_p90=data.get("output_tokens_p90"), **common,
    )


def _draft(computed: Computed, result: PlanResult) -> Plan:
    """The computed plan as an unsaved row, so the diff reads it as it would a saved one."""
    predictions = result.predictions()
    return Plan(
        service_id=0, instances=result.instances(), placement=result.placement.as_list(), routing=result.routing,
        predictions=predictions, baselines=result.baselines, objective=computed.request.objective,
        predicted_cost_usd_per_h=predictions["cost_usd_per_h"], predicted_power_kw=predictions["power_kw"],
    )


class WhatIfView(ConsoleMixin, View):
    post_action = Action.RUN_WHATIF

    def _page(self, request: HttpRequest, form: WhatIfForm, status: int = 200, **extra: Any) -> HttpResponse:
        context = {"nav": "whatif", "can": capabilities(request.user), "form": form, **extra}
        return render(request, "console/whatif.html", context, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._page(request, WhatIfForm(initial={"service": request.GET.get("service")}))

    def post(self, request: HttpRequest) -> HttpResponse:
        form = WhatIfForm(request.POST, request.FILES)
        if not form.is_valid():
            return self._page(request, form, status=400)
        service = form.cleaned_data["service"]
        try:
            with form.trace_file() as path:
                computed = plan_compute(service=service, params=_params(form.cleaned_data, path))
            if form.cleaned_data["save"]:
                plan = plan_save(actor=self.actor(), service=service, computed=computed, reason="what-if")
                return redirect("console:plan", pk=plan.pk)
        except ApplicationError as error:
            add_service_errors(form, error)
            return self._page(request, form, status=400 if error.http_status < 500 else error.http_status)
        outcome = computed.outcome
        if not isinstance(outcome, PlanResult):
            return self._page(request, form, infeasible=outcome, computed=computed)
        draft = _draft(computed, outcome)
        active = selectors.active_plan(service)
        return self._page(
            request, form, computed=computed, draft=draft, diff=plan_diff(draft, active), active=active,
            figures={"chart-whatif-baselines": figures.plan_against_baselines(draft.predictions, draft.baselines)},
        )
