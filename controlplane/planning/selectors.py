"""Reads of plans and rollouts shared by the API and the console."""

from __future__ import annotations

from django.db.models import QuerySet

from controlplane.planning.models import Plan, Rollout


def plan_list() -> QuerySet[Plan]:
    return Plan.objects.select_related("service", "created_by", "decided_by")


def rollout_list() -> QuerySet[Rollout]:
    return Rollout.objects.select_related("service", "plan").prefetch_related("steps")
