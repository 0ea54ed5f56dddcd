"""What a plan would change against its service's active plan: instances, workers, node roles, cost, power.

A worker is the same when the same node runs the same name as the same process (role, engine, model, TP,
GPUs, port, tier, dtype and engine arguments): a rollout leaves it running. Everything else is added or
removed. A node changes role when the set of roles its workers of this service play differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controlplane.planning.models import Plan

_IDENTITY = ("role", "engine", "model", "tp", "gpu_ids", "port", "tier", "dtype", "engine_args")


def _workers(placement: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {
        (str(entry["node"]), str(worker["name"])): worker
        for entry in placement or ()
        for worker in entry.get("workers", ())
    }


def _brief(node: str, worker: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "node": node, "name": worker.get("name"), "role": worker.get("role"), "tier": worker.get("tier"),
        "tp": worker.get("tp"), "gpu_ids": list(worker.get("gpu_ids") or []), "port": worker.get("port"),
    }


def _delta(before: float | None, after: float | None) -> dict[str, float | None]:
    change = None if before is None or after is None else round(after - before, 6)
    return {"before": before, "after": after, "delta": change}


def _counts(instances: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int, str], int]:
    counts: dict[tuple[str, int, str], int] = {}
    for row in instances or ():
        key = (str(row["tier"]), int(row["tp"]), str(row["role"]))
        counts[key] = counts.get(key, 0) + int(row["count"])
    return counts


def plan_diff(plan: Plan, active: Plan | None) -> dict[str, Any]:
    """The plan against ``active`` (None: nothing is active, so everything is new)."""
    if active is not None and active.pk == plan.pk:
        return {"against": None, "note": "this is the active plan"}
    before = _workers(active.placement if active is not None else [])
    after = _workers(plan.placement)
    kept = [key for key in after if key in before and all(
        before[key].get(name) == after[key].get(name) for name in _IDENTITY
    )]
    added = [_brief(node, after[(node, name)]) for node, name in sorted(set(after) - set(kept))]
    removed = [_brief(node, before[(node, name)]) for node, name in sorted(set(before) - set(kept))]
    roles_before: dict[str, set[str]] = {}
    roles_after: dict[str, set[str]] = {}
    for (node, _), worker in before.items():
        roles_before.setdefault(node, set()).add(str(worker.get("role")))
    for (node, _), worker in after.items():
        roles_after.setdefault(node, set()).add(str(worker.get("role")))
    changing = [
        {"node": node, "before": sorted(roles_before.get(node, ())), "after": sorted(roles_after.get(node, ()))}
        for node in sorted(set(roles_before) | set(roles_after))
        if roles_before.get(node, set()) != roles_after.get(node, set())
    ]
    counts_before = _counts(active.instances if active is not None else [])
    counts_after = _counts(plan.instances)
    instances = [
        {"tier": tier, "tp": tp, "role": role, "before": counts_before.get(key, 0),
         "after": counts_after.get(key, 0), "delta": counts_after.get(key, 0) - counts_before.get(key, 0)}
        for key in sorted(set(counts_before) | set(counts_after))
        for tier, tp, role in [key]
        if counts_before.get(key, 0) != counts_after.get(key, 0)
    ]
    gpus_before = sum(tp * n for (_, tp, _), n in counts_before.items())
    gpus_after = sum(tp * n for (_, tp, _), n in counts_after.items())
    return {
        "against": active.pk if active is not None else None,
        "cost_usd_per_h": _delta(active.predicted_cost_usd_per_h if active else None, plan.predicted_cost_usd_per_h),
        "power_kw": _delta(active.predicted_power_kw if active else None, plan.predicted_power_kw),
        "gpus": _delta(float(gpus_before) if active else None, float(gpus_after)),
        "instances": instances,
        "workers_added": added,
        "workers_removed": removed,
        "workers_kept": len(kept),
        "nodes_changing_role": changing,
    }
