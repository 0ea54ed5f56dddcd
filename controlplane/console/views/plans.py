"""Plans: the list, a plan's page (placement, predictions against baselines, the diff against the active
plan, approve or reject, and its rollout's live progress)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views import View

from controlplane.common.errors import ApplicationError
from controlplane.console import figures, selectors
from controlplane.console.forms import PlanApproveForm, PlanFilterForm, PlanRejectForm, add_service_errors
from controlplane.console.permissions import Action, capabilities
from controlplane.console.views.base import ConsoleAction, ConsoleMixin, ConsolePage, live_response, paginate
from controlplane.planning.diff import plan_diff
from controlplane.planning.models import Plan, PlanStatus, RolloutStatus, StepStatus
from controlplane.planning.rollouts import plan_approve_and_roll_out
from controlplane.planning.selectors import plan_list
from controlplane.planning.services import plan_reject

PLANS_PER_PAGE = 25
REFRESH_S = 2
APPROVABLE = {PlanStatus.DRAFT, PlanStatus.APPROVED}
REJECTABLE = {PlanStatus.DRAFT, PlanStatus.APPROVED}


class PlanListView(ConsolePage):
    template_name = "console/plans.html"
    nav = "plans"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = PlanFilterForm(self.request.GET or None)
        filters = form.cleaned_data if form.is_valid() else {}
        service = filters.get("service")
        rows = selectors.plans(service=service.name if service else None, status=filters.get("status"))
        context.update(form=form, page=paginate(self.request, rows, PLANS_PER_PAGE))
        return context


def _rollout_context(plan: Plan) -> dict[str, Any]:
    rollouts = selectors.plan_rollouts(plan)
    current = rollouts[0] if rollouts else None
    steps = list(current.steps.all()) if current is not None else []
    return {"plan": plan, "rollout": current, "earlier_rollouts": rollouts[1:],
            "steps_done": sum(1 for step in steps if step.status in (StepStatus.DONE, StepStatus.SKIPPED)),
            "in_flight": current is not None and current.status in (RolloutStatus.PENDING, RolloutStatus.RUNNING)}


def plan_page(request: HttpRequest, plan: Plan, *, approve_form: PlanApproveForm | None = None,
              reject_form: PlanRejectForm | None = None, status: int = 200) -> HttpResponse:
    """The plan's page; the approve and reject views show it again with their form's errors."""
    active = selectors.active_plan(plan.service)
    context = {
        "nav": "plans", "can": capabilities(request.user), "plan": plan, "active": active,
        "diff": plan_diff(plan, active),
        "approve_form": approve_form or PlanApproveForm(), "reject_form": reject_form or PlanRejectForm(),
        "approvable": plan.status in APPROVABLE, "rejectable": plan.status in REJECTABLE,
        "figures": {"chart-plan-baselines": figures.plan_against_baselines(plan.predictions or {},
                                                                            plan.baselines or {})},
        "refresh_s": REFRESH_S, "live_url": reverse("console:plan-live", args=[plan.pk]),
        **_rollout_context(plan),
    }
    return render(request, "console/plan.html", context, status=status)


class PlanDetailView(ConsoleMixin, View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        return plan_page(request, get_object_or_404(plan_list(), pk=pk))


class PlanLiveView(ConsoleMixin, View):
    """The rollout section of a plan's page, fetched every few seconds while it runs."""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        plan = get_object_or_404(plan_list(), pk=pk)
        context = _rollout_context(plan)
        html = render_to_string("console/_rollout.html", context, request=request)
        header = render_to_string("console/_plan_status.html", {"plan": plan}, request=request)
        return live_response(html={"plan-rollout": html, "plan-status": header}, done=not context["in_flight"])


class PlanApproveView(ConsoleAction):
    """Approve the plan and start its rollout, as `POST /api/v1/plans/{id}/approve` does (one transaction: if
    the rollout cannot start, the plan stays a draft)."""

    action = Action.APPROVE_PLAN

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        plan = get_object_or_404(plan_list(), pk=pk)
        form = PlanApproveForm(request.POST)
        if not form.is_valid():
            return plan_page(request, plan, approve_form=form, status=400)
        try:
            plan_approve_and_roll_out(actor=self.actor(), plan=plan, strategy=form.cleaned_data["strategy"],
                                      options=form.options())
        except ApplicationError as error:
            add_service_errors(form, error)
            plan.refresh_from_db()
            return plan_page(request, plan, approve_form=form, status=error.http_status)
        return redirect("console:plan", pk=plan.pk)


class PlanRejectView(ConsoleAction):
    action = Action.REJECT_PLAN

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        plan = get_object_or_404(plan_list(), pk=pk)
        form = PlanRejectForm(request.POST)
        if not form.is_valid():
            return plan_page(request, plan, reject_form=form, status=400)
        try:
            plan_reject(actor=self.actor(), plan=plan, reason=form.cleaned_data["reason"])
        except ApplicationError as error:
            add_service_errors(form, error)
            plan.refresh_from_db()
            return plan_page(request, plan, reject_form=form, status=error.http_status)
        return redirect("console:plan", pk=plan.pk)
