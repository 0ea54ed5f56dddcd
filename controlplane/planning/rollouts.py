"""Rollouts: start one, and advance it step by step, each step claimed atomically and idempotent.

A Celery task calls `rollout_advance` (see planning.tasks); any worker may run it, and a worker
killed mid-step leaves a claim whose lease runs out, after which another worker resumes the step.
Steps record what they created (assignment ids) in their `detail` in the same transaction, so a
re-run pushes the same assignments again instead of making new ones.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from controlplane.accounts.models import User
from controlplane.accounts.services import audit_record
from controlplane.common.errors import ApplicationError, ConflictError
from controlplane.planning.core.rollout import RolloutPlanError, by_node, node_changes, plan_steps
from controlplane.planning.models import Plan, PlanStatus, Rollout, RolloutStatus, RolloutStep, StepStatus

logger = logging.getLogger(__name__)

_DEFAULT_OPTIONS: dict[str, Any] = {
    "batch_nodes": 2,
    "canary_share": 0.1,
    "canary_duration_s": 120.0,
    "ready_timeout_s": 180.0,
    "drain_deadline_s": 30.0,
    "max_failed_workers": 0,
}


@transaction.atomic
def rollout_start(
    *, plan: Plan, actor: User | None, strategy: str = "rolling", options: dict[str, Any] | None = None
) -> Rollout:
    """Start rolling out an approved plan: persist its steps and mark it rolling out.

    One rollout per service runs at a time (the database refuses a second). The Celery task that
    advances it is enqueued when this transaction commits.
    """
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    if plan.status != PlanStatus.APPROVED:
        raise ConflictError(
            f"Plan {plan.pk} is {plan.status}; only an approved plan can be rolled out.", code="plan_wrong_status"
        )
    unknown = set(options or {}) - set(_DEFAULT_OPTIONS)
    if unknown:
        raise ApplicationError("Unknown rollout options.", fields={name: ["Unknown option."] for name in sorted(unknown)})
    merged = {**_DEFAULT_OPTIONS, **(options or {})}
    previous = Plan.objects.filter(service_id=plan.service_id, status=PlanStatus.ACTIVE).first()
    old = by_node(previous.placement) if previous else {}
    try:
        specs = plan_steps(
            node_changes(old, by_node(plan.placement)), strategy=strategy, batch_nodes=int(merged["batch_nodes"]),
            canary_share=float(merged["canary_share"]), canary_duration_s=float(merged["canary_duration_s"]),
        )
    except RolloutPlanError as exc:
        raise ApplicationError(str(exc), fields={"options": [str(exc)]}) from None
    try:
        with transaction.atomic():
            rollout = Rollout.objects.create(
                service_id=plan.service_id, plan=plan, previous_plan=previous, strategy=strategy, options=merged,
                status=RolloutStatus.RUNNING, created_by=actor, started_at=timezone.now(),
            )
    except IntegrityError:
        raise ConflictError(
            f"Service {plan.service.name} already has a rollout in flight.", code="rollout_in_flight"
        ) from None
    RolloutStep.objects.bulk_create(
        RolloutStep(rollout=rollout, index=index, kind=spec.kind, params=spec.params) for index, spec in enumerate(specs)
    )
    plan.status = PlanStatus.ROLLING_OUT
    plan.save(update_fields=["status"])
    audit_record(
        actor=actor, verb="rollout.start", obj=rollout,
        after={"plan": plan.pk, "previous_plan": previous.pk if previous else None, "strategy": strategy,
               "steps": [spec.kind for spec in specs]},
    )
    from controlplane.planning.tasks import advance_rollout

    rollout_id = rollout.pk
    transaction.on_commit(lambda: advance_rollout.delay(rollout_id))
    return rollout


@transaction.atomic
def plan_approve_and_roll_out(
    *, actor: User | None, plan: Plan, strategy: str = "rolling", options: dict[str, Any] | None = None
) -> Rollout:
    """Approve a draft and start its rollout, in one transaction: if the rollout cannot start (another is in
    flight), the plan stays a draft. Calling it again for a plan already rolling out returns that rollout."""
    from controlplane.planning.services import plan_approve

    existing = plan.rollouts.order_by("-created_at").first()
    if existing is not None and plan.status in (PlanStatus.ROLLING_OUT, PlanStatus.ACTIVE):
        return existing
    plan = plan_approve(actor=actor, plan=plan)
    return rollout_start(plan=plan, actor=actor, strategy=strategy, options=options)


@dataclass(frozen=True)
class Outcome:
    """What running a step came to: done, wait and try again later, or failed (the breaker trips)."""

    state: str
    detail: dict[str, Any]
    retry_s: float = 0.0

    @classmethod
    def done(cls, **detail: Any) -> Outcome:
        return cls("done", detail)

    @classmethod
    def wait(cls, seconds: float, **detail: Any) -> Outcome:
        return cls("wait", detail, seconds)

    @classmethod
    def failed(cls, reason: str, **detail: Any) -> Outcome:
        return cls("failed", {"reason": reason, **detail})


def _claimant() -> str:
    """A fresh name for one call of rollout_advance: its claims are its own."""
    return uuid.uuid4().hex


def _claim(rollout: Rollout, claimant: str) -> RolloutStep | None:
    """Claim the rollout's next unfinished step, unless another worker holds a live claim on it."""
    step = rollout.steps.exclude(status__in=[StepStatus.DONE, StepStatus.SKIPPED]).order_by("index").first()
    if step is None or step.status == StepStatus.FAILED:
        return None
    now = timezone.now()
    lease_expired = now - timedelta(seconds=settings.ROLLOUT_STEP_LEASE_S)
    claimed = RolloutStep.objects.filter(
        Q(pk=step.pk) & (Q(status=StepStatus.PENDING) | Q(status=StepStatus.CLAIMED, claimed_at__lt=lease_expired))
    ).update(status=StepStatus.CLAIMED, claimed_by=claimant, claimed_at=now, attempts=F("attempts") + 1)
    if claimed != 1:
        return None  # another worker holds it
    step.refresh_from_db()
    if "started_at" not in step.detail:
        step.detail["started_at"] = now.timestamp()
        RolloutStep.objects.filter(pk=step.pk).update(detail=step.detail)
    return step


def rollout_advance(rollout_id: int, *, max_steps: int = 50) -> float | None:
    """Run the rollout's steps in order until one must wait or the rollout ends.

    Returns the seconds after which to call again, or None when there is nothing more to do now.
    """
    from controlplane.planning import rollout_steps

    claimant = _claimant()
    for _ in range(max_steps):
        rollout = Rollout.objects.select_related("plan", "previous_plan", "service").get(pk=rollout_id)
        if rollout.status != RolloutStatus.RUNNING:
            return None
        step = _claim(rollout, claimant)
        if step is None:
            return settings.ROLLOUT_STEP_LEASE_S if rollout.steps.filter(status=StepStatus.CLAIMED).exists() else None
        outcome = rollout_steps.run(rollout, step)
        detail = {**step.detail, **outcome.detail}
        if outcome.state == "wait":
            RolloutStep.objects.filter(pk=step.pk, claimed_by=claimant).update(status=StepStatus.PENDING, detail=detail)
            return outcome.retry_s
        if outcome.state == "done":
            RolloutStep.objects.filter(pk=step.pk).update(status=StepStatus.DONE, finished_at=timezone.now(), detail=detail)
            audit_record(actor=None, verb=f"rollout.step.{step.kind}", obj=rollout, after={"index": step.index, **outcome.detail},
                         system="rollout")
            continue
        RolloutStep.objects.filter(pk=step.pk).update(status=StepStatus.FAILED, finished_at=timezone.now(), detail=detail)
        rollout_steps.roll_back(rollout, reason=str(outcome.detail.get("reason", "step failed")), step=step)
        return None
    return 0.0
