"""Assignments: the desired state of a node at a generation, and pushing it to the node's agent.

A node's generation only grows. The agent refuses an assignment older than the one it holds, so a
delayed push can never roll a node back; pushing the same generation twice is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from controlplane.accounts.models import User
from controlplane.accounts.services import audit_record
from controlplane.fleet.agent_client import AgentClient, AgentError
from controlplane.fleet.models import Assignment, Node, NodeStatus
from controlplane.planning.models import Plan


@transaction.atomic
def assignment_create(
    *, node: Node, workers: Sequence[dict[str, Any]], plan: Plan | None, actor: User | None, reason: str
) -> Assignment:
    """Record a new desired state for `node` at its next generation."""
    node = Node.objects.select_for_update().get(pk=node.pk)
    # Past what the agent runs, too: an agent that outlived a wiped control plane holds a higher generation.
    generation = max(node.generation_desired, node.generation_applied) + 1
    assignment = Assignment.objects.create(node=node, generation=generation, plan=plan, workers=list(workers))
    Node.objects.filter(pk=node.pk).update(generation_desired=generation)
    audit_record(
        actor=actor, verb="assignment.create", obj=assignment,
        before={"generation": generation - 1},
        after={"generation": generation, "workers": [w["name"] for w in workers], "reason": reason},
        system="rollout",
    )
    return assignment


def assignment_body(assignment: Assignment) -> dict[str, Any]:
    """What the agent receives: `PUT /v1/assignment`."""
    return {"node": assignment.node.name, "generation": assignment.generation, "workers": assignment.workers}


def latest_assignment(node: Node) -> Assignment | None:
    return Assignment.objects.filter(node=node).order_by("-generation").first()


def assignment_push(*, assignment: Assignment) -> None:
    """Send `assignment` to its node's agent. Raises AgentError when the agent is unreachable or refuses."""
    with AgentClient(assignment.node) as client:
        client.put_assignment(assignment_body(assignment))
    Assignment.objects.filter(pk=assignment.pk, pushed_at__isnull=True).update(pushed_at=timezone.now())


def assignments_repush(*, older_than_s: float) -> list[str]:
    """Push again the latest assignment of every reachable node still behind it (its agent was away or
    restarted, or a push failed). Returns the nodes pushed to."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    behind = Node.objects.filter(generation_applied__lt=F("generation_desired")).exclude(status=NodeStatus.UNREACHABLE)
    pushed: list[str] = []
    for node in behind:
        assignment = latest_assignment(node)
        if assignment is None or (assignment.pushed_at is not None and assignment.pushed_at > cutoff):
            continue
        try:
            assignment_push(assignment=assignment)
        except AgentError:
            continue  # the sweep marks it unreachable if it stays silent; the next pass retries
        Assignment.objects.filter(pk=assignment.pk).update(pushed_at=timezone.now())
        pushed.append(node.name)
    return pushed


def applied(assignment: Assignment) -> bool:
    """Has the node reported (by heartbeat) a generation at least this assignment's?"""
    return Node.objects.filter(Q(pk=assignment.node_id) & Q(generation_applied__gte=assignment.generation)).exists()
