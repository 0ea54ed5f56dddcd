"""The routing plan a service's routers follow: its pools, each worker's weight, the local-prefill threshold.

A worker's weight is its share of its pool's capacity (the capacity model's requests/s of one instance of
its tier and TP over the pool's sum), so a faster tier takes proportionally more and every instance runs
at the same share of what it can carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .placement import Placement

POOLS: tuple[str, ...] = ("prefill", "decode", "colocated")


def routing_plan(
    placement: Placement,
    capacity_rps: Mapping[tuple[str, int, str], float],
    *,
    service: str,
    model: str,
    local_prefill_threshold: int,
    version: int | None = None,
    admission_model: str | None = None,
) -> dict[str, Any]:
    """The routing JSON for a placement; ``capacity_rps`` is one instance's capacity by (tier, tp, role)."""
    pools: dict[str, list[dict[str, Any]]] = {}
    for role in POOLS:
        workers = sorted(placement.of_role(role), key=lambda w: (w.node, w.name))
        shares = [max(capacity_rps.get((w.tier, w.tp, role), 0.0), 0.0) for w in workers]
        total = sum(shares)
        pools[role] = [
            {
                "worker": f"{w.node}/{w.name}",
                "node": w.node,
                "port": w.port,
                "tier": w.tier,
                "tp": w.tp,
                "weight": round(share / total, 6) if total > 0 else round(1.0 / len(workers), 6),
            }
            for w, share in zip(workers, shares, strict=True)
        ]
    return {
        "service": service,
        "model": model,
        "version": version,
        "pools": pools,
        "local_prefill_threshold": local_prefill_threshold if pools["prefill"] else 0,
        "admission_model": admission_model,
    }
