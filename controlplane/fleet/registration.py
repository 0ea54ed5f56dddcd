"""What node agents do to the control plane: register (bootstrap token → node token) and heartbeat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.accounts.models import ApiToken, Role, TokenScope, User
from controlplane.accounts.services import audit_record, token_create, token_revoke
from controlplane.common.errors import ApplicationError
from controlplane.common.snapshots import snapshot
from controlplane.fleet.models import GpuTier, Node, NodeStatus, Worker, WorkerStatus

# A node's identity in tokens and the audit log: one machine user per node.
_NODE_USER_PREFIX = "node:"
_RECOVERING = {NodeStatus.REGISTERED, NodeStatus.UNREACHABLE}


@dataclass(frozen=True)
class Registration:
    node: Node
    token: str


def _node_user(name: str) -> User:
    username = f"{_NODE_USER_PREFIX}{name}"[:150]
    user, created = User.objects.get_or_create(username=username, defaults={"role": Role.AGENT})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def node_register(
    *,
    bootstrap: ApiToken,
    name: str,
    tier: GpuTier,
    gpu_count: int,
    agent_url: str,
    agent_version: str = "",
    labels: dict[str, str] | None = None,
) -> Registration:
    """Register a node, or re-register it (a restarted agent that lost its state): either way it gets a new
    node token and its older ones are revoked. A node keeps its status across re-registration unless it
    was unreachable, and its tier cannot change (that is a different machine: register it under a new name).
    """
    node = Node.objects.select_for_update().filter(name=name).first()
    if node is None:
        node = Node.objects.create(
            name=name, tier=tier, gpu_count=gpu_count, agent_url=agent_url, agent_version=agent_version,
            labels=labels or {},
        )
        verb, before = "node.register", None
    else:
        if node.tier_id != tier.pk:
            raise ApplicationError(
                f"Node {name} is registered as {node.tier.name}, not {tier.name}.",
                code="tier_mismatch", fields={"tier": [f"Is {node.tier.name}."]}, http_status=409,
            )
        before = snapshot(node, ("agent_url", "gpu_count", "status", "agent_version", "labels"))
        node.agent_url, node.agent_version, node.gpu_count = agent_url, agent_version, gpu_count
        node.labels = {**node.labels, **(labels or {})}  # what the agent says of itself; operators' labels stay
        if node.status == NodeStatus.UNREACHABLE:
            node.status = NodeStatus.REGISTERED
        node.save(update_fields=["agent_url", "agent_version", "gpu_count", "status", "labels"])
        verb = "node.reregister"
    for old in ApiToken.objects.filter(node=node, revoked_at__isnull=True):
        token_revoke(actor=None, token=old)
    token, raw = token_create(
        actor=None, user=_node_user(name), name=f"node {name}", scope=TokenScope.NODE, node=node,
        # The longest life a token may have; an agent whose node token expires registers again.
        ttl_days=settings.API_TOKEN_MAX_TTL_DAYS,
    )
    audit_record(
        actor=None, verb=verb, obj=node, before=before,
        after={**snapshot(node, ("agent_url", "gpu_count", "status", "agent_version")), "token": token.prefix,
               "bootstrap_token": bootstrap.prefix},
        system="agent",
    )
    return Registration(node=node, token=raw)


@dataclass(frozen=True)
class Heartbeat:
    generation_desired: int
    status: str


_WORKER_FIELDS = ("role", "engine", "model_name", "tp", "gpu_ids", "port", "status", "service_id", "plan_id")


@transaction.atomic
def node_heartbeat(
    *, node: Node, generation_applied: int, agent_version: str, workers: Sequence[dict[str, Any]]
) -> Heartbeat:
    """Record that a node's agent is alive, which generation it runs and what its workers are doing.

    Workers it no longer reports are marked stopped. A node that was unreachable is ready again.
    `workers` are validated dicts with the Worker fields (service and plan as ids).
    """
    now = timezone.now()
    node = Node.objects.select_for_update().get(pk=node.pk)
    previous_status = node.status
    node.last_heartbeat_at = now
    node.generation_applied = generation_applied
    node.agent_version = agent_version
    if node.status in _RECOVERING:
        node.status = NodeStatus.READY
    node.save(update_fields=["last_heartbeat_at", "generation_applied", "agent_version", "status"])
    if node.status != previous_status:
        audit_record(
            actor=None, verb="node.ready", obj=node, before={"status": previous_status}, after={"status": node.status},
            system="heartbeat",
        )

    existing = {worker.name: worker for worker in Worker.objects.filter(node=node)}
    changed: list[Worker] = []
    for report in workers:
        worker = existing.pop(report["name"], None)
        if worker is None:
            Worker.objects.create(node=node, name=report["name"], updated_at=now,
                                  **{field: report[field] for field in _WORKER_FIELDS})
            continue
        if any(getattr(worker, field) != report[field] for field in _WORKER_FIELDS):
            for field in _WORKER_FIELDS:
                setattr(worker, field, report[field])
            worker.updated_at = now
            changed.append(worker)
    for gone in existing.values():
        if gone.status != WorkerStatus.STOPPED:
            gone.status = WorkerStatus.STOPPED
            gone.updated_at = now
            changed.append(gone)
    if changed:
        Worker.objects.bulk_update(changed, [*_WORKER_FIELDS, "updated_at"])
    return Heartbeat(generation_desired=node.generation_desired, status=node.status)
