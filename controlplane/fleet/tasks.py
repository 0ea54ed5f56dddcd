"""Celery tasks of the fleet app: thin wrappers over services."""

from __future__ import annotations

from django.conf import settings

from controlplane.fleet.services import nodes_mark_unreachable
from controlplane.tasks import cleave_task


@cleave_task(name="fleet.sweep_heartbeats")
def sweep_heartbeats() -> list[str]:
    """Mark nodes unreachable when their agent has been silent past HEARTBEAT_TIMEOUT_S."""
    return nodes_mark_unreachable(timeout_s=settings.HEARTBEAT_TIMEOUT_S)
