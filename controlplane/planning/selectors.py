"""Reads of plans and rollouts shared by the API and the console."""

from __future__ import annotations

from django.db.models import QuerySet

from controlplane.planning.models import Plan, Rollout


def plan_list() -> QuerySet[Plan]:
    return Plan.objects.select_related("service", "created_by", "decided_by")


def rollout_list() -> QuerySet[Rollout]:
    return Rollout.objects.select_related("service", "plan").prefetch_related("steps")


def active_plan(service_id: int) -> Plan | None:
    """The service's active plan, if it has one."""
    return Plan.objects.filter(service_id=service_id, status="active").first()


def service_plans(service_id: int) -> QuerySet[Plan]:
    """A service's plans, newest first."""
    return plan_list().filter(service_id=service_id)
