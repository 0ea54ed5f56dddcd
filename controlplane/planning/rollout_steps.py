"""The rollout's step kinds. Each takes the rollout and its claimed step and returns an Outcome.

Every step is idempotent: it records the assignments it created in the step's detail (in the same
transaction as creating them) and, run again, pushes those instead of creating new ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.accounts.services import audit_record
from controlplane.fleet.agent_client import AgentClient, AgentError
from controlplane.fleet.assignments import assignment_create, assignment_push, latest_assignment
from controlplane.fleet.models import Assignment, Node, Worker, WorkerStatus
from controlplane.planning.core.rollout import by_node, canary_routing, compose, node_changes
from controlplane.planning.models import Plan, PlanStatus, Rollout, RolloutStatus, RolloutStep
from controlplane.planning.rollouts import Outcome
from controlplane.planning.services import plan_activate

_POLL_S = 1.0


def _service_workers(node: Node, service: str) -> list[dict[str, Any]]:
    latest = latest_assignment(node)
    return [dict(w) for w in (latest.workers if latest else []) if w.get("service") == service]


def _old_routing(rollout: Rollout) -> Mapping[str, Any] | None:
    return rollout.previous_plan.routing if rollout.previous_plan else None


def _with_routing(workers: Iterable[Mapping[str, Any]], routing: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if routing is None:
        return [dict(w) for w in workers]
    return [{**w, "routing": dict(routing)} if w.get("role") == "router" else dict(w) for w in workers]


def _push_desired(
    rollout: Rollout, step: RolloutStep, nodes: Iterable[str],
    service_workers: Callable[[Node], list[dict[str, Any]]], reason: str,
) -> Outcome:
    """Create (once) and push an assignment per node whose service workers are `service_workers(node)`."""
    created: dict[str, int] = dict(step.detail.get("assignments", {}))
    service = rollout.service.name
    for node in Node.objects.filter(name__in=list(nodes)).order_by("name"):
        if node.name in created:
            continue
        with transaction.atomic():
            latest = latest_assignment(node)
            desired = compose(latest.workers if latest else [], service, service_workers(node))
            if latest is not None and latest.workers == desired:
                created[node.name] = latest.pk
            else:
                created[node.name] = assignment_create(
                    node=node, workers=desired, plan=rollout.plan, actor=None, reason=f"rollout {rollout.pk}: {reason}"
                ).pk
            step.detail["assignments"] = created
            RolloutStep.objects.filter(pk=step.pk).update(detail=step.detail)
    unreachable = []
    for assignment in Assignment.objects.filter(pk__in=created.values()).select_related("node"):
        if assignment.node.generation_applied >= assignment.generation:
            continue
        try:
            assignment_push(assignment=assignment)
        except AgentError as exc:
            unreachable.append(str(exc))
    if unreachable:
        if _elapsed(step) > rollout.options["ready_timeout_s"]:
            return Outcome.failed("agents unreachable: " + "; ".join(unreachable), assignments=created)
        return Outcome.wait(2.0, assignments=created, unreachable=unreachable)
    return Outcome.done(assignments=created)


def _elapsed(step: RolloutStep) -> float:
    return time.time() - float(step.detail.get("started_at", time.time()))


def _changes(rollout: Rollout) -> dict[str, Any]:
    old = by_node(rollout.previous_plan.placement) if rollout.previous_plan else {}
    return {change.node: change for change in node_changes(old, by_node(rollout.plan.placement))}


def start(rollout: Rollout, step: RolloutStep) -> Outcome:
    """Start the new workers beside the old ones (minus old ones that clash and were drained)."""
    changes = _changes(rollout)
    old = by_node(rollout.previous_plan.placement) if rollout.previous_plan else {}
    old_routing = _old_routing(rollout)

    def workers(node: Node) -> list[dict[str, Any]]:
        change = changes[node.name]
        staying = [w for w in old.get(node.name, []) if w["name"] not in change.clashing]
        # Routers keep routing the old pools until the route step; a brand-new router starts with the new plan.
        return _with_routing(staying, old_routing) + _with_routing(change.add, old_routing or rollout.plan.routing)

    return _push_desired(rollout, step, step.params["nodes"], workers, "start new workers")


def wait_ready(rollout: Rollout, step: RolloutStep) -> Outcome:
    """Wait until every new worker on the step's nodes reports ready; trip the breaker on failures or timeout."""
    changes = _changes(rollout)
    expected = {(node, str(w["name"])) for node in step.params["nodes"] for w in changes[node].add}
    rows = {(w.node.name, w.name): w.status for w in Worker.objects.filter(node__name__in=step.params["nodes"])
            .select_related("node")}
    ready = sorted(f"{n}/{w}" for n, w in expected if rows.get((n, w)) == WorkerStatus.READY)
    failed = sorted(f"{n}/{w}" for n, w in expected if rows.get((n, w)) == WorkerStatus.FAILED)
    if len(failed) > int(rollout.options["max_failed_workers"]):
        return Outcome.failed(f"workers failed to start: {', '.join(failed)}", ready=ready, failed=failed)
    if len(ready) == len(expected):
        return Outcome.done(ready=ready)
    if _elapsed(step) > float(rollout.options["ready_timeout_s"]):
        waiting = sorted(f"{n}/{w}" for n, w in expected if rows.get((n, w)) != WorkerStatus.READY)
        return Outcome.failed(
            f"workers not ready after {rollout.options['ready_timeout_s']:.0f} s: {', '.join(waiting)}", ready=ready,
        )
    return Outcome.wait(_POLL_S, ready=ready, failed=failed)


def route(rollout: Rollout, step: RolloutStep) -> Outcome:
    """Point the service's routers at the new pools (a share of the traffic for a canary, else all of it)."""
    routing = canary_routing(_old_routing(rollout), rollout.plan.routing, float(step.params["share"]))
    service = rollout.service.name
    nodes = [node for node in Node.objects.all() if any(w.get("role") == "router" for w in _service_workers(node, service))]
    return _push_desired(
        rollout, step, [node.name for node in nodes],
        lambda node: _with_routing(_service_workers(node, service), routing), f"route {step.params['share']:.0%}",
    )


def observe(rollout: Rollout, step: RolloutStep) -> Outcome:
    """Let the canary serve for a while, then compare its SLO attainment and $/Mtok with the old pools'."""
    from controlplane.planning.canary import compare

    if _elapsed(step) < float(step.params["duration_s"]):
        return Outcome.wait(min(5.0, float(step.params["duration_s"])))
    verdict = compare(rollout, since=float(step.detail["started_at"]))
    if verdict.promote:
        return Outcome.done(comparison=verdict.as_dict())
    return Outcome.failed(f"canary worse than the old pools: {verdict.reason}", comparison=verdict.as_dict())


def drain(rollout: Rollout, step: RolloutStep) -> Outcome:
    """Ask agents to drain the old workers (stop admitting, finish in-flight) and wait out the deadline."""
    deadline = float(rollout.options["drain_deadline_s"])
    asked: dict[str, list[str]] = dict(step.detail.get("asked", {}))
    problems = []
    for node in Node.objects.filter(name__in=list(step.params["workers"])):
        for worker in step.params["workers"][node.name]:
            if worker in asked.get(node.name, []):
                continue
            try:
                with AgentClient(node) as client:
                    client.drain(worker, deadline_s=deadline)
            except AgentError as exc:
                problems.append(str(exc))  # an agent that is gone has nothing left to drain
            asked.setdefault(node.name, []).append(worker)
    if _elapsed(step) < deadline and not _drained(step.params["workers"]):
        return Outcome.wait(_POLL_S, asked=asked, problems=problems)
    return Outcome.done(asked=asked, problems=problems)


def _drained(workers: Mapping[str, list[str]]) -> bool:
    for node in Node.objects.filter(name__in=list(workers)):
        try:
            with AgentClient(node) as client:
                status = client.status()
        except AgentError:
            continue
        states = {w["name"]: w for w in status.get("workers", [])}
        for name in workers[node.name]:
            entry = states.get(name)
            if entry is not None and not entry.get("drained", False) and entry.get("status") not in ("stopped", "failed"):
                return False
    return True


def stop(rollout: Rollout, step: RolloutStep) -> Outcome:
    """Stop the old workers: each node keeps only the new plan's workers of this service."""
    new = by_node(rollout.plan.placement)
    routing = rollout.plan.routing
    return _push_desired(
        rollout, step, step.params["nodes"], lambda node: _with_routing(new.get(node.name, []), routing),
        "stop old workers",
    )


def activate(rollout: Rollout, step: RolloutStep) -> Outcome:
    """Make the plan active (superseding the old one) and end the rollout."""
    with transaction.atomic():
        plan_activate(actor=None, plan=rollout.plan)
        Rollout.objects.filter(pk=rollout.pk).update(status=RolloutStatus.SUCCEEDED, finished_at=timezone.now())
    return Outcome.done(plan=rollout.plan_id)


_HANDLERS: dict[str, Callable[[Rollout, RolloutStep], Outcome]] = {
    "start": start, "wait_ready": wait_ready, "route": route, "observe": observe, "drain": drain, "stop": stop,
    "activate": activate,
}


def run(rollout: Rollout, step: RolloutStep) -> Outcome:
    return _HANDLERS[step.kind](rollout, step)


def roll_back(rollout: Rollout, *, reason: str, step: RolloutStep) -> None:
    """The breaker tripped: put every touched node back to the old plan's workers and old routing."""
    old = by_node(rollout.previous_plan.placement) if rollout.previous_plan else {}
    touched = set(old) | set(by_node(rollout.plan.placement))
    service = rollout.service.name
    old_routing = _old_routing(rollout)
    pushed, problems = [], []
    for node in Node.objects.filter(name__in=touched).order_by("name"):
        with transaction.atomic():
            latest = latest_assignment(node)
            desired = compose(latest.workers if latest else [], service, _with_routing(old.get(node.name, []), old_routing))
            if latest is not None and latest.workers == desired:
                continue
            assignment = assignment_create(node=node, workers=desired, plan=rollout.previous_plan, actor=None,
                                           reason=f"rollout {rollout.pk} rolled back")
        try:
            assignment_push(assignment=assignment)
            pushed.append(node.name)
        except AgentError as exc:
            problems.append(str(exc))  # the reconcile sweep pushes it when the agent is back
    with transaction.atomic():
        Rollout.objects.filter(pk=rollout.pk).update(
            status=RolloutStatus.ROLLED_BACK, finished_at=timezone.now(), reason=reason
        )
        Plan.objects.filter(pk=rollout.plan_id).update(status=PlanStatus.ROLLED_BACK)
        audit_record(actor=None, verb="rollout.roll_back", obj=rollout,
                     after={"reason": reason, "failed_step": step.index, "kind": step.kind, "nodes": pushed,
                            "problems": problems}, system="rollout-breaker")
