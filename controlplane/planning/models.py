"""Plans (what the fleet should run for a service) and the rollouts that make them real."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class PlanStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    APPROVED = "approved", "Approved"
    ROLLING_OUT = "rolling_out", "Rolling out"
    ACTIVE = "active", "Active"
    SUPERSEDED = "superseded", "Superseded"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"


class Objective(models.TextChoices):
    COST = "cost", "Least cost"
    POWER = "power", "Least power"
    GOODPUT_PER_USD = "goodput_per_usd", "Most goodput per dollar"


class Plan(models.Model):
    """Instance counts per (tier, TP, role), their placement, the routing plan and the predictions.

    `inputs` holds everything the plan was computed from (profile, inventory, constraints, model
    factors), so it can be recomputed and audited.
    """

    service = models.ForeignKey("traffic.Service", on_delete=models.CASCADE, related_name="plans")
    status = models.CharField(max_length=16, choices=PlanStatus.choices, default=PlanStatus.DRAFT)
    objective = models.CharField(max_length=16, choices=Objective.choices, default=Objective.COST)
    inputs = models.JSONField(default=dict)
    instances = models.JSONField(default=list, help_text="[{tier, tp, role, count}]")
    placement = models.JSONField(default=list, help_text="[{node, workers: [...]}]")
    routing = models.JSONField(default=dict)
    predictions = models.JSONField(default=dict)
    baselines = models.JSONField(default=dict)
    predicted_cost_usd_per_h = models.FloatField(null=True, blank=True)
    predicted_power_kw = models.FloatField(null=True, blank=True)
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["service", "status"], name="plan_service_status_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["service"], condition=Q(status="active"), name="plan_one_active_per_service"
            ),
            models.CheckConstraint(
                condition=Q(predicted_cost_usd_per_h__isnull=True) | Q(predicted_cost_usd_per_h__gte=0),
                name="plan_cost_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"plan {self.pk} ({self.service.name}, {self.status})"


class RolloutStrategy(models.TextChoices):
    ALL_AT_ONCE = "all-at-once", "All at once"
    ROLLING = "rolling", "Rolling"
    CANARY = "canary", "Canary"


class RolloutStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    HALTED = "halted", "Halted"
    ROLLED_BACK = "rolled_back", "Rolled back"
    FAILED = "failed", "Failed"


class Rollout(models.Model):
    """Moves a service's fleet from its active plan to a new one, in persisted steps."""

    service = models.ForeignKey("traffic.Service", on_delete=models.CASCADE, related_name="rollouts")
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="rollouts")
    previous_plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    strategy = models.CharField(max_length=16, choices=RolloutStrategy.choices, default=RolloutStrategy.ROLLING)
    status = models.CharField(max_length=16, choices=RolloutStatus.choices, default=RolloutStatus.PENDING)
    options = models.JSONField(default=dict, blank=True, help_text="Strategy knobs: batch size, canary share, deadlines.")
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["service"],
                condition=Q(status__in=["pending", "running"]),
                name="rollout_one_in_flight_per_service",
            ),
        ]

    def __str__(self) -> str:
        return f"rollout {self.pk} of plan {self.plan_id}"


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CLAIMED = "claimed", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class RolloutStep(models.Model):
    """One idempotent step of a rollout. A worker claims it atomically before running it."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()
    kind = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["rollout", "index"]
        constraints = [models.UniqueConstraint(fields=["rollout", "index"], name="rollout_step_unique_index")]

    def __str__(self) -> str:
        return f"step {self.index} ({self.kind}) of rollout {self.rollout_id}"


class RebalanceDecision(models.Model):
    """What one scheduled replan of a service decided, and why: the history the console shows."""

    service = models.ForeignKey("traffic.Service", on_delete=models.CASCADE, related_name="rebalance_decisions")
    at = models.DateTimeField(default=timezone.now)
    proposed = models.BooleanField()
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    auto_approved = models.BooleanField(default=False)
    rollout = models.ForeignKey(Rollout, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["service", "at"], name="rebalance_service_at_idx")]

    def __str__(self) -> str:
        return f"{self.service_id} {self.at:%Y-%m-%d %H:%M} {'proposed' if self.proposed else 'kept'}"
