"""Reads of the fleet shared by the API and the console."""

from __future__ import annotations

from django.db.models import QuerySet

from controlplane.fleet.models import GpuTier, Node, Worker


def tier_list() -> QuerySet[GpuTier]:
    return GpuTier.objects.all()


def node_list() -> QuerySet[Node]:
    return Node.objects.select_related("tier")


def worker_list() -> QuerySet[Worker]:
    return Worker.objects.select_related("node", "service")
