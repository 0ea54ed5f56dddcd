"""Accounting: what the fleet's GPUs cost, draw and deliver; the rules, and the reads of the fleet now.

The rules are pure functions over plain rows (tests feed them known numbers); the reads at the end
load those rows in a fixed number of queries, whatever the size of the fleet. Raw-sample queries name
the fleet's node ids (`node_id = ANY(...)`), so PostgreSQL reaches rows through the (node, ts) indexes
the sample tables have instead of scanning a day of samples by time. The rules:

- A GPU costs its tier's price per hour whether it works or idles: a node costs all its GPUs.
- A GPU belongs to the role (and service, and plan) of the live worker whose `gpu_ids` name it on its
  node; a GPU no live worker holds is `idle`.
- A reading stands for the time until the next reading of the same GPU (or worker), when that comes
  within the gap cap (2 reporting intervals); a reading followed by a longer gap, or by none yet, stands
  for one reporting interval. Energy is power integrated this way; tokens are token rates integrated so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection

from controlplane.fleet.models import Node, Worker
from controlplane.telemetry.models import NodeSample, WorkerSample

IDLE = "idle"
# Workers in these states hold no GPUs any more.
GONE_WORKER_STATUSES = frozenset({"stopped", "failed"})
# A GPU's or worker's latest reading counts as "now" for this long: agents may batch a few intervals.
FRESH_S = 60.0


def sample_interval_s() -> float:
    """The agents' reporting interval (DESIGN.md: a sample per GPU every 10 s)."""
    return float(settings.TELEMETRY_SAMPLE_INTERVAL_S)


def gap_cap_s(interval_s: float) -> float:
    return 2.0 * interval_s


def reading_durations_s(times_s: Sequence[float], *, interval_s: float) -> list[float]:
    """How long each reading of one source (times ascending) stands for, under the rule above."""
    cap = gap_cap_s(interval_s)
    durations = []
    for index, moment in enumerate(times_s):
        gap = times_s[index + 1] - moment if index + 1 < len(times_s) else math.inf
        durations.append(gap if gap <= cap else interval_s)
    return durations


def integrate(readings: Sequence[tuple[float, float]], *, interval_s: float) -> float:
    """The integral over time of one source's readings, given as (unix seconds, value) in time order.

    Power in watts integrates to joules; a token rate per second integrates to tokens.
    """
    durations = reading_durations_s([moment for moment, _ in readings], interval_s=interval_s)
    return sum(value * duration for (_, value), duration in zip(readings, durations, strict=True))


# --- Who holds which GPU, and what it costs ---------------------------------------------------------


@dataclass(frozen=True)
class NodeRow:
    id: int
    name: str
    tier_id: int
    tier: str
    price_usd_per_gpu_h: float
    gpu_count: int
    status: str = "ready"
    created_at: datetime | None = None


@dataclass(frozen=True)
class WorkerRow:
    node_id: int
    name: str
    role: str
    gpu_ids: tuple[int, ...]
    service_id: int | None = None
    service: str | None = None
    plan_id: int | None = None


@dataclass(frozen=True)
class GpuOwner:
    role: str = IDLE
    service_id: int | None = None
    service: str | None = None
    plan_id: int | None = None


UNOWNED = GpuOwner()
GpuKey = tuple[int, int]  # (node id, GPU index)


def gpu_ids_of(value: Any) -> tuple[int, ...]:
    """A worker's `gpu_ids` JSON as GPU indexes; anything that is not a list of integers holds no GPU."""
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, int) and not isinstance(item, bool) and item >= 0)


def gpu_owners(nodes: Iterable[NodeRow], workers: Iterable[WorkerRow]) -> dict[GpuKey, GpuOwner]:
    """Every GPU of every node, mapped to the worker that holds it (or UNOWNED: idle).

    Workers come in name order; when two claim one GPU (briefly, during a rollout) the first keeps it,
    so a GPU is never counted twice. GPU ids beyond the node's GPU count are ignored.
    """
    owners: dict[GpuKey, GpuOwner] = {}
    for node in nodes:
        for index in range(node.gpu_count):
            owners[(node.id, index)] = UNOWNED
    for worker in sorted(workers, key=lambda w: (w.node_id, w.name)):
        owner = GpuOwner(role=worker.role, service_id=worker.service_id, service=worker.service, plan_id=worker.plan_id)
        for index in worker.gpu_ids:
            if owners.get((worker.node_id, index)) is UNOWNED:
                owners[(worker.node_id, index)] = owner
    return owners


@dataclass(frozen=True)
class FleetCost:
    """Dollars per hour now, by what holds the GPUs. Idle GPUs count in the total, their node, tier and pool."""

    total_usd_per_h: float
    by_node: dict[str, float]
    by_tier: dict[str, float]
    by_pool: dict[tuple[str, str], float]  # (tier, role)
    by_service: dict[str, float]
    by_service_tier: dict[tuple[str, str], float]  # (service or "", tier)
    by_plan: dict[int, float]
    gpus: int
    gpus_by_pool: dict[tuple[str, str], int] = field(default_factory=dict)


def fleet_cost(nodes: Sequence[NodeRow], owners: Mapping[GpuKey, GpuOwner]) -> FleetCost:
    """What each GPU costs now (its tier's price per hour), summed by node, tier, pool, service and plan."""
    by_id = {node.id: node for node in nodes}
    by_node: dict[str, float] = defaultdict(float)
    by_tier: dict[str, float] = defaultdict(float)
    by_pool: dict[tuple[str, str], float] = defaultdict(float)
    by_service: dict[str, float] = defaultdict(float)
    by_service_tier: dict[tuple[str, str], float] = defaultdict(float)
    by_plan: dict[int, float] = defaultdict(float)
    gpus_by_pool: dict[tuple[str, str], int] = defaultdict(int)
    total = 0.0
    for (node_id, _), owner in owners.items():
        node = by_id.get(node_id)
        if node is None:
            continue
        price = node.price_usd_per_gpu_h
        total += price
        by_node[node.name] += price
        by_tier[node.tier] += price
        by_pool[(node.tier, owner.role)] += price
        gpus_by_pool[(node.tier, owner.role)] += 1
        by_service_tier[(owner.service or "", node.tier)] += price
        if owner.service is not None:
            by_service[owner.service] += price
        if owner.plan_id is not None:
            by_plan[owner.plan_id] += price
    return FleetCost(
        total_usd_per_h=total, by_node=dict(by_node), by_tier=dict(by_tier), by_pool=dict(by_pool),
        by_service=dict(by_service), by_service_tier=dict(by_service_tier), by_plan=dict(by_plan),
        gpus=sum(gpus_by_pool.values()), gpus_by_pool=dict(gpus_by_pool),
    )


# --- Ratios ---------------------------------------------------------------------------------------------


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None where there is nothing to divide by."""
    return numerator / denominator if denominator > 0 else None


def usd_per_million_tokens(cost_usd: float, tokens: float) -> float | None:
    per_token = ratio(cost_usd, tokens)
    return None if per_token is None else per_token * 1e6


def weighted_mean(pairs: Iterable[tuple[float | None, float]]) -> float | None:
    """The mean of values weighted by their weights, skipping missing values; None when nothing weighs."""
    total = weight_sum = 0.0
    for value, weight in pairs:
        if value is not None and weight > 0:
            total += value * weight
            weight_sum += weight
    return ratio(total, weight_sum)


# Where a plan's colocated baseline lies in `Plan.baselines`: planning writes the first; the second is the
# short name this app was first built against.
COLOCATED_BASELINE_KEYS = ("colocated_best_single_tier", "colocated")


def colocated_baseline_usd_per_h(baselines: Any) -> float | None:
    """What the plan's colocated baseline was predicted to cost per hour, or None where it has none (or it
    was infeasible): `baselines["colocated_best_single_tier"]["cost_usd_per_h"]`."""
    if not isinstance(baselines, dict):
        return None
    for key in COLOCATED_BASELINE_KEYS:
        baseline = baselines.get(key)
        if not isinstance(baseline, dict) or baseline.get("feasible") is False:
            continue
        cost = baseline.get("cost_usd_per_h")
        if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost) and cost >= 0:
            return float(cost)
    return None


@dataclass(frozen=True)
class Saving:
    baseline_usd_per_h: float
    cost_usd_per_h: float

    @property
    def saving_usd_per_h(self) -> float:
        return self.baseline_usd_per_h - self.cost_usd_per_h

    @property
    def saving_share(self) -> float | None:
        return ratio(self.saving_usd_per_h, self.baseline_usd_per_h)


# --- Reads of the fleet now (and the SQL that differs between PostgreSQL and SQLite) -------------------------------------------------


def ids_condition(column: str, ids: Sequence[int]) -> tuple[str, list[Any]]:
    """`column` is one of `ids`: one array parameter on PostgreSQL, a list of them elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(ids)]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def seconds_between_sql(later: str, earlier: str) -> str:
    if connection.vendor == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS double precision)"
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def db_time(moment: datetime) -> Any:
    """A datetime as a raw query's parameter (SQLite stores text in UTC)."""
    return connection.ops.adapt_datetimefield_value(moment)


# --- The fleet now ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetSnapshot:
    nodes: list[NodeRow]
    workers: list[WorkerRow]
    owners: dict[GpuKey, GpuOwner]

    @property
    def node_ids(self) -> list[int]:
        return [node.id for node in self.nodes]


def fleet_snapshot() -> FleetSnapshot:
    """Nodes with their tier and price, and the GPUs their live workers hold (two queries)."""
    nodes = [
        NodeRow(
            id=row["id"], name=row["name"], tier_id=row["tier_id"], tier=row["tier__name"],
            price_usd_per_gpu_h=float(row["tier__price_usd_per_gpu_h"]), gpu_count=row["gpu_count"],
            status=row["status"], created_at=row["created_at"],
        )
        for row in Node.objects.order_by("id").values(
            "id", "name", "tier_id", "tier__name", "tier__price_usd_per_gpu_h", "gpu_count", "status", "created_at"
        )
    ]
    workers = [
        WorkerRow(
            node_id=row["node_id"], name=row["name"], role=row["role"], gpu_ids=gpu_ids_of(row["gpu_ids"]),
            service_id=row["service_id"], service=row["service__name"], plan_id=row["plan_id"],
        )
        for row in Worker.objects.exclude(status__in=GONE_WORKER_STATUSES).order_by().values(
            "node_id", "name", "role", "gpu_ids", "service_id", "service__name", "plan_id"
        )
    ]
    return FleetSnapshot(nodes=nodes, workers=workers, owners=gpu_owners(nodes, workers))


@dataclass(frozen=True)
class GpuReading:
    utilization: float
    power_w: float


def gpu_readings_now(*, node_ids: Sequence[int], now: datetime) -> dict[GpuKey, GpuReading]:
    """Each GPU's latest reading, where it is fresh (one query)."""
    if not node_ids:
        return {}
    condition, params = ids_condition("node_id", node_ids)
    sql = f"""
        SELECT s.node_id, s.gpu_index, s.utilization, s.power_w
        FROM {NodeSample._meta.db_table} s
        JOIN (
            SELECT node_id, gpu_index, MAX(ts) AS latest FROM {NodeSample._meta.db_table}
            WHERE {condition} AND ts > %s GROUP BY node_id, gpu_index
        ) l ON s.node_id = l.node_id AND s.gpu_index = l.gpu_index AND s.ts = l.latest
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, db_time(now - timedelta(seconds=FRESH_S))])
        return {(node_id, gpu): GpuReading(util, power) for node_id, gpu, util, power in cursor.fetchall()}


@dataclass(frozen=True)
class WorkerRate:
    node_id: int
    worker_name: str
    role: str
    service_id: int | None
    prompt_tokens_per_s: float
    generation_tokens_per_s: float


def worker_rates_now(*, node_ids: Sequence[int], now: datetime) -> list[WorkerRate]:
    """Each engine worker's latest token rates, where they are fresh (one query)."""
    if not node_ids:
        return []
    condition, params = ids_condition("node_id", node_ids)
    table = WorkerSample._meta.db_table
    sql = f"""
        SELECT s.node_id, s.worker_name, s.role, s.service_id, s.prompt_tokens_per_s, s.generation_tokens_per_s
        FROM {table} s
        JOIN (
            SELECT node_id, worker_name, MAX(ts) AS latest FROM {table}
            WHERE {condition} AND ts > %s GROUP BY node_id, worker_name
        ) l ON s.node_id = l.node_id AND s.worker_name = l.worker_name AND s.ts = l.latest
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, db_time(now - timedelta(seconds=FRESH_S))])
        return [WorkerRate(*row) for row in cursor.fetchall()]
