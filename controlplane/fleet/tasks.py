"""Celery tasks of the fleet app: thin wrappers over services."""

from __future__ import annotations

from django.conf import settings

from controlplane.fleet.assignments import assignments_repush
from controlplane.fleet.services import nodes_mark_unreachable
from controlplane.tasks import cleave_task


@cleave_task(name="fleet.sweep_heartbeats")
def sweep_heartbeats() -> list[str]:
    """Mark nodes unreachable when their agent has been silent past HEARTBEAT_TIMEOUT_S."""
    return nodes_mark_unreachable(timeout_s=settings.HEARTBEAT_TIMEOUT_S)


@cleave_task(name="fleet.repush_assignments")
def repush_assignments() -> list[str]:
    """Push again the desired state of nodes whose agents are behind it (they were away, or a push failed)."""
    return assignments_repush(older_than_s=settings.ASSIGNMENT_REPUSH_INTERVAL_S)
