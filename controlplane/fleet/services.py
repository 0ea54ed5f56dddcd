"""Writes for tiers, nodes and workers. Each is one transaction and leaves an AuditEvent."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.accounts.models import User
from controlplane.accounts.services import audit_record
from controlplane.common.errors import ApplicationError
from controlplane.common.snapshots import snapshot
from controlplane.fleet.models import GpuTier, Node, NodeStatus

_NODE_FIELDS = ("name", "tier", "gpu_count", "agent_url", "status", "labels")
_NODE_EDITABLE = {"gpu_count", "agent_url", "status", "labels"}
# An operator may move a node between these by hand; the others are set by the agent's heartbeats.
_OPERATOR_STATUSES = {NodeStatus.READY, NodeStatus.DRAINING, NodeStatus.CORDONED}


@transaction.atomic
def tier_update(*, actor: User, tier: GpuTier, price_usd_per_gpu_h: Decimal) -> GpuTier:
    """Set a tier's price per GPU-hour (the hardware numbers come from the catalog)."""
    before = snapshot(tier, ("price_usd_per_gpu_h",))
    tier.price_usd_per_gpu_h = price_usd_per_gpu_h
    tier.save(update_fields=["price_usd_per_gpu_h", "updated_at"])
    audit_record(actor=actor, verb="tier.update", obj=tier, before=before, after=snapshot(tier, ("price_usd_per_gpu_h",)))
    return tier


@transaction.atomic
def node_create(
    *, actor: User | None, name: str, tier: GpuTier, gpu_count: int, agent_url: str = "", labels: dict[str, Any] | None = None
) -> Node:
    node = Node.objects.create(name=name, tier=tier, gpu_count=gpu_count, agent_url=agent_url, labels=labels or {})
    audit_record(actor=actor, verb="node.create", obj=node, after=snapshot(node, _NODE_FIELDS))
    return node


@transaction.atomic
def node_update(*, actor: User, node: Node, **changes: Any) -> Node:
    """Edit a node by hand: its GPUs, agent URL, labels, or status (ready, draining, cordoned)."""
    unknown = set(changes) - _NODE_EDITABLE
    if unknown:
        raise ApplicationError("These fields cannot be edited.", fields={name: ["Read-only."] for name in sorted(unknown)})
    status = changes.get("status")
    if status is not None and status != node.status and status not in _OPERATOR_STATUSES:
        allowed = ", ".join(sorted(_OPERATOR_STATUSES))
        raise ApplicationError(
            f"An operator may set a node's status to {allowed} only.", fields={"status": [f"Must be one of: {allowed}."]}
        )
    node = Node.objects.select_for_update().get(pk=node.pk)
    before = snapshot(node, _NODE_FIELDS)
    for field, value in changes.items():
        setattr(node, field, value)
    node.save(update_fields=sorted(changes) or None)
    audit_record(actor=actor, verb="node.update", obj=node, before=before, after=snapshot(node, _NODE_FIELDS))
    return node


@transaction.atomic
def node_delete(*, actor: User, node: Node) -> None:
    if node.workers.exclude(status="stopped").exists():
        raise ApplicationError(
            f"Node {node.name} still runs workers; drain it before deleting it.", code="node_busy", http_status=409
        )
    audit_record(actor=actor, verb="node.delete", obj=node, before=snapshot(node, _NODE_FIELDS))
    node.delete()


def nodes_mark_unreachable(*, timeout_s: float) -> list[str]:
    """Mark nodes whose last heartbeat is older than `timeout_s` unreachable; returns their names.

    Each node is claimed with a conditional update, so two sweeps racing mark (and audit) it once.
    """
    cutoff = timezone.now() - timedelta(seconds=timeout_s)
    stale = Node.objects.filter(last_heartbeat_at__lt=cutoff).exclude(status=NodeStatus.UNREACHABLE)
    marked: list[str] = []
    for node in stale.only("pk", "name", "status"):
        with transaction.atomic():
            claimed = (
                Node.objects.filter(pk=node.pk, status=node.status, last_heartbeat_at__lt=cutoff)
                .update(status=NodeStatus.UNREACHABLE)
            )
            if claimed != 1:
                continue
            audit_record(
                actor=None,
                verb="node.unreachable",
                obj=node,
                before={"status": node.status},
                after={"status": NodeStatus.UNREACHABLE, "heartbeat_timeout_s": timeout_s},
                system="heartbeat-sweep",
            )
            marked.append(node.name)
    return marked
