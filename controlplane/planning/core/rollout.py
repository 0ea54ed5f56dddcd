"""How a rollout moves one service from its active placement to a new one: per-node changes and steps.

Pure functions over plain dicts (a worker is the JSON an assignment carries). The executor in
`controlplane.planning.rollout` persists the steps and runs them; this module only decides them.

Make-before-break: on each node the new workers start beside the old ones, the routers shift to
them, then the old ones drain and stop. Where a new worker needs a GPU or a port an old one holds,
that node is break-before-make instead: its clashing old workers drain and stop first, while the
rest of the fleet (other nodes, other batches) keeps serving.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Worker = Mapping[str, Any]
STRATEGIES = ("all-at-once", "rolling", "canary")
# Fields that make a worker a different process; `routing` alone changes in place (routers reload it).
_IDENTITY = ("role", "engine", "model", "tp", "gpu_ids", "port", "tier", "dtype", "engine_args")


class RolloutPlanError(ValueError):
    """A rollout that cannot be planned: the message names what is wrong."""


@dataclass(frozen=True)
class NodeChange:
    node: str
    keep: tuple[Worker, ...] = ()
    add: tuple[Worker, ...] = ()
    remove: tuple[Worker, ...] = ()
    # Old workers that hold a GPU or port a new worker needs: they go before the new ones start.
    clashing: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        return bool(self.add or self.remove)


@dataclass(frozen=True)
class StepSpec:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


def same_process(a: Worker, b: Worker) -> bool:
    """Would `b` run as the very process `a` is (only its routing may differ)?"""
    return all(a.get(name) == b.get(name) for name in _IDENTITY)


def by_node(placement: Iterable[Mapping[str, Any]]) -> dict[str, list[Worker]]:
    """A plan's placement (`[{"node", "workers"}]`) as node → workers."""
    nodes: dict[str, list[Worker]] = {}
    for entry in placement:
        nodes.setdefault(str(entry["node"]), []).extend(entry["workers"])
    return nodes


def node_changes(old: Mapping[str, Sequence[Worker]], new: Mapping[str, Sequence[Worker]]) -> list[NodeChange]:
    """Per node, which of the service's workers stay, start and stop between two placements."""
    changes: list[NodeChange] = []
    for node in sorted(set(old) | set(new)):
        before = {str(w["name"]): w for w in old.get(node, ())}
        after = {str(w["name"]): w for w in new.get(node, ())}
        keep = [after[name] for name in after if name in before and same_process(before[name], after[name])]
        kept = {str(w["name"]) for w in keep}
        add = [w for name, w in after.items() if name not in kept]
        remove = [w for name, w in before.items() if name not in kept]
        clashing = tuple(sorted(str(w["name"]) for w in remove if any(_clash(w, n) for n in add)))
        changes.append(NodeChange(node, tuple(keep), tuple(add), tuple(remove), clashing))
    return changes


def _clash(old: Worker, new: Worker) -> bool:
    if old["name"] == new["name"]:
        return True
    if old.get("port") is not None and old.get("port") == new.get("port"):
        return True
    return bool(set(old.get("gpu_ids") or ()) & set(new.get("gpu_ids") or ()))


def compose(current: Sequence[Worker], service: str, workers: Iterable[Worker]) -> list[dict[str, Any]]:
    """A node's desired workers: what it runs for other services, plus `workers` for `service`."""
    others = [dict(w) for w in current if w.get("service") != service]
    return others + [dict(w) for w in workers]


def plan_steps(
    changes: Sequence[NodeChange], *, strategy: str, batch_nodes: int = 2, canary_share: float = 0.1,
    canary_duration_s: float = 120.0,
) -> list[StepSpec]:
    """The persisted steps of a rollout, in order. Every step is idempotent."""
    if strategy not in STRATEGIES:
        raise RolloutPlanError(f"unknown strategy {strategy!r}; one of: {', '.join(STRATEGIES)}")
    if batch_nodes < 1:
        raise RolloutPlanError("batch_nodes must be at least 1")
    if strategy == "canary" and not 0 < canary_share < 1:
        raise RolloutPlanError("canary_share must be between 0 and 1")
    moving = [change for change in changes if change.changes]
    starting = [change for change in moving if change.add or change.clashing]
    size = batch_nodes if strategy == "rolling" else max(len(starting), 1)
    steps: list[StepSpec] = []
    for first in range(0, len(starting), size):
        batch = starting[first:first + size]
        clashing = {change.node: list(change.clashing) for change in batch if change.clashing}
        if clashing:
            steps.append(StepSpec("drain", {"workers": clashing}))
        steps.append(StepSpec("start", {"nodes": [change.node for change in batch]}))
        if any(change.add for change in batch):
            steps.append(StepSpec("wait_ready", {"nodes": [change.node for change in batch if change.add]}))
    if strategy == "canary":
        steps.append(StepSpec("route", {"share": canary_share}))
        steps.append(StepSpec("observe", {"duration_s": canary_duration_s}))
    steps.append(StepSpec("route", {"share": 1.0}))
    leaving = {
        change.node: [str(w["name"]) for w in change.remove if str(w["name"]) not in change.clashing]
        for change in moving
    }
    leaving = {node: names for node, names in leaving.items() if names}
    if leaving:
        steps.append(StepSpec("drain", {"workers": leaving}))
        steps.append(StepSpec("stop", {"nodes": sorted(leaving)}))
    steps.append(StepSpec("activate"))
    return steps


def canary_routing(old: Mapping[str, Any] | None, new: Mapping[str, Any], share: float) -> dict[str, Any]:
    """A routing plan that sends about `share` of the traffic to the new pools and the rest to the old.

    Each pool's weights are scaled so the new workers carry `share` of the pool's total weight.
    """
    if old is None or share >= 1.0:
        return dict(new)
    merged = dict(new)
    pools: dict[str, list[dict[str, Any]]] = {}
    old_pools: Mapping[str, Sequence[Mapping[str, Any]]] = old.get("pools", {})
    new_pools: Mapping[str, Sequence[Mapping[str, Any]]] = new.get("pools", {})
    for role in sorted(set(old_pools) | set(new_pools)):
        news = list(new_pools.get(role, ()))
        # A worker in both plans (kept as it was) counts once, as new.
        staying = {w.get("worker") for w in news}
        olds = [w for w in old_pools.get(role, ()) if w.get("worker") not in staying]
        if not olds or not news:
            pools[role] = [dict(w) for w in olds or news]
            continue
        old_total = sum(float(w.get("weight", 1.0)) for w in olds)
        new_total = sum(float(w.get("weight", 1.0)) for w in news)
        pools[role] = [
            {**w, "weight": float(w.get("weight", 1.0)) / old_total * (1 - share), "canary": False} for w in olds
        ] + [{**w, "weight": float(w.get("weight", 1.0)) / new_total * share, "canary": True} for w in news]
    merged["pools"] = pools
    merged["canary_share"] = share
    return merged
