"""The plan lifecycle: approve, reject, activate. Each write is one transaction with an AuditEvent.

draft ──approve──► approved ──(rollout)──► rolling_out ──► active ──(next plan)──► superseded
  └──reject──► rejected
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from controlplane.accounts.models import User
from controlplane.accounts.services import audit_record
from controlplane.common.errors import ConflictError
from controlplane.planning.models import Plan, PlanStatus
from controlplane.planning.planner import PlanParams
from controlplane.planning.planner import plan_create as planner_create
from controlplane.traffic.models import Service

_PLAN_FIELDS = ("status", "decided_by", "decided_at", "activated_at")


def _locked(plan: Plan) -> Plan:
    return Plan.objects.select_for_update().get(pk=plan.pk)


def _require_status(plan: Plan, *allowed: str, action: str) -> None:
    if plan.status not in allowed:
        raise ConflictError(
            f"Plan {plan.pk} is {plan.status}; only a {' or '.join(allowed)} plan can be {action}.",
            code="plan_wrong_status",
            fields={"status": [f"Is {plan.status}."]},
        )


@transaction.atomic
def plan_approve(*, actor: User | None, plan: Plan) -> Plan:
    """Approve a draft. Approving an approved plan again is a no-op (retries do not duplicate)."""
    plan = _locked(plan)
    if plan.status == PlanStatus.APPROVED:
        return plan
    _require_status(plan, PlanStatus.DRAFT, action="approved")
    before = snapshot_plan(plan)
    plan.status = PlanStatus.APPROVED
    plan.decided_by = actor
    plan.decided_at = timezone.now()
    plan.save(update_fields=["status", "decided_by", "decided_at"])
    audit_record(actor=actor, verb="plan.approve", obj=plan, before=before, after=snapshot_plan(plan), system="policy")
    return plan


@transaction.atomic
def plan_reject(*, actor: User, plan: Plan, reason: str = "") -> Plan:
    plan = _locked(plan)
    if plan.status == PlanStatus.REJECTED:
        return plan
    _require_status(plan, PlanStatus.DRAFT, PlanStatus.APPROVED, action="rejected")
    before = snapshot_plan(plan)
    plan.status = PlanStatus.REJECTED
    plan.decided_by = actor
    plan.decided_at = timezone.now()
    if reason:
        plan.reason = reason
    plan.save(update_fields=["status", "decided_by", "decided_at", "reason"])
    audit_record(actor=actor, verb="plan.reject", obj=plan, before=before, after=snapshot_plan(plan))
    return plan


@transaction.atomic
def plan_activate(*, actor: User | None, plan: Plan) -> Plan:
    """Make `plan` its service's active plan and supersede the one before, in one transaction.

    The database holds at most one active plan per service (a partial unique index), so two
    activations racing cannot both win.
    """
    plan = _locked(plan)
    if plan.status == PlanStatus.ACTIVE:
        return plan
    _require_status(plan, PlanStatus.APPROVED, PlanStatus.ROLLING_OUT, action="activated")
    previous = (
        Plan.objects.select_for_update().filter(service_id=plan.service_id, status=PlanStatus.ACTIVE).first()
    )
    if previous is not None:
        previous.status = PlanStatus.SUPERSEDED
        previous.save(update_fields=["status"])
        audit_record(
            actor=actor, verb="plan.supersede", obj=previous, before={"status": PlanStatus.ACTIVE},
            after={"status": PlanStatus.SUPERSEDED, "superseded_by": plan.pk}, system="rollout",
        )
    before = snapshot_plan(plan)
    plan.status = PlanStatus.ACTIVE
    plan.activated_at = timezone.now()
    plan.save(update_fields=["status", "activated_at"])
    audit_record(actor=actor, verb="plan.activate", obj=plan, before=before, after=snapshot_plan(plan), system="rollout")
    return plan


def snapshot_plan(plan: Plan) -> dict[str, object]:
    return {
        "status": plan.status,
        "decided_by": plan.decided_by_id,
        "decided_at": plan.decided_at.isoformat() if plan.decided_at else None,
        "activated_at": plan.activated_at.isoformat() if plan.activated_at else None,
    }


def plan_create(*, actor: User | None, service: Service, params: PlanParams) -> Plan:
    """Compute a plan for `service` and save it as a draft with its AuditEvent (see planning.planner).

    An infeasible request raises ApplicationError (code "infeasible", HTTP 422) naming the binding
    constraint; bad input raises ApplicationError (400) naming the field. Either way nothing is written.
    """
    return planner_create(actor=actor, service=service, params=params)
