"""Scheduled rebalancing: replan each service when its interval is due, and roll out where policy allows.

The planner's hysteresis decides whether a replan is worth proposing. A service with auto-approve
gets its proposal approved and rolled out at once; otherwise it waits as a draft for an operator.
When traffic stops, a service scales down to its minimum: to nothing but its router when its
minimum is zero.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.accounts.services import audit_record
from controlplane.common.errors import ApplicationError
from controlplane.planning.models import Plan, PlanStatus, RebalanceDecision, Rollout, RolloutStatus
from controlplane.planning.planner import PlanParams, active_plan_of, plan_compute, plan_replan, plan_save
from controlplane.planning.rollouts import plan_approve_and_roll_out
from controlplane.traffic.models import Service, WorkloadProfile


def services_due(*, now: datetime) -> list[Service]:
    """Services whose last scheduled replan is older than their rebalancing interval."""
    due = []
    for service in Service.objects.all():
        last = RebalanceDecision.objects.filter(service=service).order_by("-at").values_list("at", flat=True).first()
        if last is None or now - last >= timedelta(seconds=service.rebalance_interval_s):
            due.append(service)
    return due


def _idle(service: Service) -> bool:
    """No request in the last REBALANCE_IDLE_WINDOWS profiled windows (and there are that many)."""
    counts = list(WorkloadProfile.objects.filter(service=service).order_by("-window_start")
                  .values_list("request_count", flat=True)[:settings.REBALANCE_IDLE_WINDOWS])
    return len(counts) == settings.REBALANCE_IDLE_WINDOWS and not any(counts)


def _router_only_plan(service: Service, active: Plan) -> Plan:
    """A plan that keeps only the service's router: what a service with minimum zero runs when idle."""
    placement = [
        {"node": entry["node"], "workers": [w for w in entry["workers"] if w.get("role") == "router"]}
        for entry in active.placement
    ]
    placement = [entry for entry in placement if entry["workers"]]
    with transaction.atomic():
        plan = Plan.objects.create(
            service=service, status=PlanStatus.DRAFT, objective=active.objective,
            inputs={"source": "scale-to-zero", "active_plan": active.pk}, instances=[], placement=placement,
            routing={**active.routing, "pools": {}, "local_prefill_threshold": 0},
            predictions={"cost_usd_per_h": 0.0, "power_kw": 0.0, "gpus": 0, "meets_slo": True, "rate_rps": 0.0},
            baselines={}, predicted_cost_usd_per_h=0.0, predicted_power_kw=0.0,
            reason="no traffic: scale to zero (the service's minimum is zero)",
        )
        plan.routing = {**plan.routing, "version": plan.pk}
        plan.save(update_fields=["routing"])
        audit_record(actor=None, verb="plan.create", obj=plan, after={"reason": plan.reason}, system="beat")
    return plan


def _propose(service: Service) -> tuple[Plan | None, str]:
    active = active_plan_of(service)
    if _idle(service):
        if active is None or not active.instances:
            return None, "no traffic and nothing running"
        if service.min_instances_per_phase == 0:
            return _router_only_plan(service, active), "no traffic: scale to zero"
        try:
            computed = plan_compute(service=service, params=PlanParams(
                source="profile", objective=active.objective, rate_rps=settings.REBALANCE_IDLE_RATE_RPS,
            ))
            plan = plan_save(actor=None, service=service, computed=computed, system="beat",
                             reason=f"no traffic: scale down to the minimum of {service.min_instances_per_phase}")
        except ApplicationError as exc:
            return None, f"no traffic, but no minimum plan: {exc.message}"
        return plan, plan.reason
    replan = plan_replan(service=service)
    return replan.plan, replan.decision.reason


def service_rebalance(*, service: Service) -> RebalanceDecision:
    """Replan one service now; approve and roll out the proposal where its policy auto-approves."""
    if Rollout.objects.filter(service=service, status=RolloutStatus.RUNNING).exists():
        return RebalanceDecision.objects.create(service=service, proposed=False,
                                                    reason="a rollout is in flight; replanning after it")
    plan, reason = _propose(service)
    rollout = None
    if plan is not None and service.auto_approve:
        try:
            rollout = plan_approve_and_roll_out(actor=None, plan=plan, strategy=settings.REBALANCE_STRATEGY)
        except ApplicationError as exc:
            reason = f"{reason}; auto-approval failed: {exc.message}"
    decision = RebalanceDecision.objects.create(
        service=service, proposed=plan is not None, plan=plan, auto_approved=rollout is not None, rollout=rollout,
        reason=reason,
    )
    audit_record(
        actor=None, verb="rebalance.propose" if plan is not None else "rebalance.keep", obj=service,
        after={"plan": plan.pk if plan else None, "auto_approved": rollout is not None, "reason": reason},
        system="rebalance",
    )
    return decision


def rebalance_due(*, now: datetime | None = None) -> list[RebalanceDecision]:
    """Run the scheduled replan of every service that is due."""
    return [service_rebalance(service=service) for service in services_due(now=now or timezone.now())]
