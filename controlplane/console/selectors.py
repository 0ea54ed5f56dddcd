"""Reads that the console's pages need, across apps."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, Sum

from controlplane.fleet.models import Node, NodeStatus
from controlplane.planning.models import Plan, PlanStatus
from controlplane.traffic.models import Service


@dataclass(frozen=True)
class FleetSummary:
    nodes: int
    nodes_ready: int
    gpus: int
    services: int
    active_plans: int
    draft_plans: int


def fleet_summary() -> FleetSummary:
    nodes = Node.objects.aggregate(
        total=Count("id"), ready=Count("id", filter=Q(status=NodeStatus.READY)), gpus=Sum("gpu_count")
    )
    plans = Plan.objects.aggregate(
        active=Count("id", filter=Q(status=PlanStatus.ACTIVE)), drafts=Count("id", filter=Q(status=PlanStatus.DRAFT))
    )
    return FleetSummary(
        nodes=nodes["total"],
        nodes_ready=nodes["ready"],
        gpus=nodes["gpus"] or 0,
        services=Service.objects.count(),
        active_plans=plans["active"],
        draft_plans=plans["drafts"],
    )
