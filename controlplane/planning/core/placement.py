"""Which node, GPUs and port each instance of a plan gets, and where the service's router runs.

Instances are placed tier by tier, largest TP first. Within a TP level the workers this service runs now
stay where they are when the plan keeps an instance of the same (tier, TP, role) and their GPUs are still
free (a rollout then leaves them running), and the rest go to the nodes that already run this service,
then to the nodes with the most free GPUs. Any order works: TP degrees are powers of two, so with
g_j free GPUs on node j, placing instances of the larger degrees first leaves exactly
sum_j floor(g_j / t) - (GPUs of larger instances) / t places for TP-t instances, and the solver's
per-tier constraints (the GPUs of instances of TP >= t fit sum_j t * floor(g_j / t)) guarantee that is
enough. ``place`` raises PlacementError only for counts the solver would not have produced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .inputs import NodeInventory, PlacedWorker

ROLE_ORDER: tuple[str, ...] = ("prefill", "decode", "colocated")


class PlacementError(ValueError):
    """Instances that do not fit the nodes' free GPUs."""


@dataclass(frozen=True)
class WorkerPlacement:
    """One worker of the plan on one node: the JSON an assignment carries."""

    node: str
    name: str
    role: str
    engine: str
    model: str
    tp: int
    gpu_ids: tuple[int, ...]
    port: int
    tier: str
    dtype: str
    service: str
    engine_args: Mapping[str, str | int | float | bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "role": self.role, "engine": self.engine, "model": self.model, "tp": self.tp,
            "gpu_ids": list(self.gpu_ids), "port": self.port, "tier": self.tier, "dtype": self.dtype,
            "service": self.service, "engine_args": dict(self.engine_args),
        }


@dataclass(frozen=True)
class Placement:
    """Every worker of a plan (the router among them), by node."""

    workers: tuple[WorkerPlacement, ...]

    def as_list(self) -> list[dict[str, Any]]:
        """``[{"node": name, "workers": [...]}]``, nodes and workers sorted by name."""
        by_node: dict[str, list[WorkerPlacement]] = {}
        for worker in self.workers:
            by_node.setdefault(worker.node, []).append(worker)
        return [
            {"node": node, "workers": [w.as_dict() for w in sorted(by_node[node], key=lambda w: w.name)]}
            for node in sorted(by_node)
        ]

    def of_role(self, role: str) -> list[WorkerPlacement]:
        return [worker for worker in self.workers if worker.role == role]


@dataclass
class _NodeState:
    node: NodeInventory
    free: list[int]
    ports: set[int]
    reserved: set[int]  # GPUs of this service's current workers: taken last, so they can stay
    service_gpus: int
    held_ports: set[int] = field(default_factory=set)  # ports of this service's current workers


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker of the plan shares: the service, model, dtype and engine arguments per role."""

    service: str
    model: str
    dtype: str
    engine_args: Mapping[str, Mapping[str, str | int | float | bool]] = field(default_factory=dict)


def tier_slots(nodes: Iterable[NodeInventory], tp_degrees: Sequence[int]) -> dict[str, dict[int, int]]:
    """Per tier and TP degree t, the free GPUs that instances of TP >= t can use: sum of t * floor(free / t).

    The solver keeps the GPUs of each tier's instances of TP >= t within this, for every allowed t; that
    is what ``place`` needs to succeed.
    """
    slots: dict[str, dict[int, int]] = {}
    for node in nodes:
        per_tp = slots.setdefault(node.tier.name, dict.fromkeys(tp_degrees, 0))
        for tp in tp_degrees:
            per_tp[tp] += tp * (node.free_gpus // tp)
    return slots


def place(
    instances: Sequence[tuple[str, int, str, int]],
    nodes: Sequence[NodeInventory],
    spec: WorkerSpec,
    *,
    previous: Sequence[PlacedWorker] = (),
    router_port: int = 8000,
    base_port: int = 8100,
) -> Placement:
    """Place ``(tier, tp, role, count)`` instances on ``nodes`` and add one router.

    Worker names are ``<service>-<role>-<n>`` (a kept worker keeps its name), unique across the plan;
    ports count from ``base_port`` and skip those other services hold on the node.
    """
    states = {
        node.name: _NodeState(node, sorted(node.free_gpu_ids), set(node.used_ports), set(), 0)
        for node in nodes
    }
    previous_by_kind: dict[tuple[str, int, str], list[PlacedWorker]] = {}
    for worker in sorted(previous, key=lambda w: (w.node, w.name)):
        state = states.get(worker.node)
        if state is not None:
            # a new worker takes none of them, so the old one can serve until the new one is ready
            state.held_ports.add(worker.port)
        if worker.role == "router" or state is None:
            continue
        if state.node.tier.name != worker.tier or not set(worker.gpu_ids) <= set(state.free):
            continue
        state.reserved.update(worker.gpu_ids)
        state.service_gpus += len(worker.gpu_ids)
        previous_by_kind.setdefault((worker.tier, worker.tp, worker.role), []).append(worker)
    placed: list[tuple[str, str, int, str, tuple[int, ...], int | None, str | None]] = []
    # (node, tier, tp, role, gpu_ids, kept port, kept name)
    wanted: dict[tuple[str, int, str], int] = {}
    for tier, tp, role, count in instances:
        if count < 0:
            raise PlacementError(f"negative count for {role} {tier} TP{tp}")
        wanted[(tier, tp, role)] = wanted.get((tier, tp, role), 0) + count
    for tier in sorted({kind[0] for kind in wanted}):
        tier_states = [s for s in states.values() if s.node.tier.name == tier]
        for tp in sorted({kind[1] for kind in wanted if kind[0] == tier}, reverse=True):
            for role in ROLE_ORDER:
                need = wanted.get((tier, tp, role), 0)
                for worker in previous_by_kind.get((tier, tp, role), []):
                    if need == 0:
                        break
                    state = states[worker.node]
                    if not set(worker.gpu_ids) <= set(state.free):
                        continue
                    state.free = [gpu for gpu in state.free if gpu not in worker.gpu_ids]
                    port = worker.port if worker.port not in state.ports else None
                    if port is not None:
                        state.ports.add(port)
                    placed.append((worker.node, tier, tp, role, worker.gpu_ids, port, worker.name))
                    need -= 1
                order = sorted(tier_states, key=lambda s: (-s.service_gpus, -len(s.free), s.node.name))
                for state in order:
                    while need and len(state.free) >= tp:
                        placed.append((state.node.name, tier, tp, role, _take(state, tp), None, None))
                        need -= 1
                if need:
                    raise PlacementError(
                        f"{need} x {role} {tier} TP{tp}: the nodes of {tier} have no {tp} free GPUs left for them"
                    )
    used_names = {name for *_, name in placed if name is not None}
    next_number = dict.fromkeys(ROLE_ORDER, 0)
    workers: list[WorkerPlacement] = []
    for node_name, tier, tp, role, gpus, port, name in sorted(
        placed, key=lambda p: (p[6] is None, ROLE_ORDER.index(p[3]), p[0], p[4])
    ):
        state = states[node_name]
        if name is None:
            name = _new_name(used_names, next_number, spec.service, role)
        if port is None:
            port = _free_port(state.ports | state.held_ports, base_port)
            state.ports.add(port)
        workers.append(WorkerPlacement(
            node=node_name, name=name, role=role, engine=state.node.engine, model=spec.model, tp=tp,
            gpu_ids=tuple(sorted(gpus)), port=port, tier=tier, dtype=spec.dtype, service=spec.service,
            engine_args=dict(spec.engine_args.get(role, {})),
        ))
    if workers:
        workers.append(_router(workers, states, spec, previous, router_port))
    return Placement(tuple(workers))


def _take(state: _NodeState, count: int) -> tuple[int, ...]:
    # GPUs the service's current workers hold go last, so those workers can stay where the plan keeps them
    order = sorted(state.free, key=lambda gpu: (gpu in state.reserved, gpu))
    chosen = order[:count]
    state.free = [gpu for gpu in state.free if gpu not in chosen]
    return tuple(chosen)


def _new_name(used: set[str], next_number: dict[str, int], service: str, role: str) -> str:
    number = next_number[role]
    while f"{service}-{role}-{number}" in used:
        number += 1
    next_number[role] = number + 1
    name = f"{service}-{role}-{number}"
    used.add(name)
    return name


def _free_port(used: set[int], base: int) -> int:
    port = base
    while port in used:
        port += 1
    if port > 65535:
        raise PlacementError("no free port left on the node")
    return port


def _router(
    workers: Sequence[WorkerPlacement],
    states: Mapping[str, _NodeState],
    spec: WorkerSpec,
    previous: Sequence[PlacedWorker],
    router_port: int,
) -> WorkerPlacement:
    """One router for the service: where it runs now if that node is still usable, else beside the most workers."""
    chosen: tuple[str, int] | None = None
    name = f"{spec.service}-router-0"
    for old in previous:
        state = states.get(old.node)
        if old.role == "router" and state is not None and old.port not in state.ports:
            chosen, name = (old.node, old.port), old.name
            break
    if chosen is None:
        counts: dict[str, int] = {}
        for worker in workers:
            counts[worker.node] = counts.get(worker.node, 0) + 1
        node = max(sorted(counts), key=lambda n: counts[n])
        chosen = (node, _free_port(states[node].ports | states[node].held_ports, router_port))
    node, port = chosen
    states[node].ports.add(port)
    state = states[node]
    return WorkerPlacement(
        node=node, name=name, role="router", engine=state.node.engine, model=spec.model, tp=1, gpu_ids=(),
        port=port, tier=state.node.tier.name, dtype=spec.dtype, service=spec.service, engine_args={},
    )
