"""Roll-ups: what one minute bucket holds, from raw samples and request records; what one hour bucket
holds, from its minute buckets. This room computes rows; telemetry.services stores them.

A bucket is recomputed whole, so running a roll-up twice gives the same rows. Pools and costs use the
fleet as it is when the bucket is computed (GPU ownership through Worker rows, tier prices): the
minute task runs every minute, so a bucket is priced and attributed as the fleet stood then.

Why it stays small. For 30 days of a 1,250-node fleet (10,000 GPUs, 8 tiers, a sample per GPU every
10 s, ~2,500 engine workers, ~10 services, ~60 pools of tier x role x service) at the default retention:

    table                      rows per day    rows held (30 days of running)
    NodeSample (raw, 24 h)       86,400,000      86,400,000 (one day)
    WorkerSample (raw, 24 h)     21,600,000      21,600,000 (one day)
    NodeRollup minute (8 d)       1,800,000      14,400,000
    NodeRollup hour (400 d)          30,000         900,000
    TierRollup minute (8 d)          86,400         691,200
    TierRollup hour (400 d)           1,440          43,200
    ServiceRollup minute (8 d)       14,400         115,200
    ServiceRollup hour (400 d)          240           7,200

The overview of the whole fleet over 30 days reads the TierRollup hour rows of those 30 days
(~43,000 rows, summed by the database to 720 points); a day reads 86,400 minute rows; an hour 3,600.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, F, FloatField, Q, QuerySet, Sum

from controlplane.telemetry.accounting import (
    UNOWNED,
    FleetSnapshot,
    GpuKey,
    NodeRow,
    db_time,
    gap_cap_s,
    ids_condition,
    ratio,
    seconds_between_sql,
)
from controlplane.telemetry.models import (
    NodeRollup,
    NodeSample,
    Resolution,
    ServiceRollup,
    TierRollup,
    WorkerSample,
)
from controlplane.traffic.models import RecordStatus, RequestRecord, Service

_GAP_TOLERANCE_S = 1e-3


@dataclass
class BucketRows:
    """Every roll-up row of one bucket at one resolution."""

    resolution_s: int
    bucket_start: datetime
    nodes: list[NodeRollup] = field(default_factory=list)
    pools: list[TierRollup] = field(default_factory=list)
    services: list[ServiceRollup] = field(default_factory=list)


@dataclass
class _Sums:
    """Running sums for one node, pool or service bucket."""

    gpus: float = 0.0
    cost_usd: float = 0.0
    samples: int = 0
    util_sum: float = 0.0
    power_sum: float = 0.0
    energy_j: float = 0.0
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0

    def means(self) -> tuple[float | None, float | None]:
        return ratio(self.util_sum, self.samples), ratio(self.power_sum, self.samples)


@dataclass(frozen=True)
class GpuStats:
    samples: int
    util_sum: float
    power_sum: float
    energy_j: float


def _held_share(node: NodeRow, start: datetime, end: datetime) -> float:
    """The share of the bucket the node was held (registered)."""
    if node.created_at is None or node.created_at <= start:
        return 1.0
    return max(0.0, (end - node.created_at).total_seconds()) / (end - start).total_seconds()


def _integrated_sql(
    table: str, *, partition: str, group_by: str, aggregates: str, node_ids: list[int]
) -> tuple[str, list[Any]]:
    """Readings of [start, end) grouped, where `aggregates` may use `held_s`, how long each reading stands for
    (see accounting). Parameters: gap cap, interval, node ids, start, horizon, end. The readings are read up
    to one gap cap past `end` (the horizon), so a reading's successor is seen whenever it counts.
    """
    condition, params = ids_condition("node_id", node_ids)
    gap = seconds_between_sql(f"LEAD(ts) OVER (PARTITION BY {partition} ORDER BY ts)", "ts")
    sql = f"""
        SELECT {group_by}, {aggregates}
        FROM (
            SELECT *, CASE WHEN {gap} <= %s THEN {gap} ELSE %s END AS held_s
            FROM {table} WHERE {condition} AND ts >= %s AND ts < %s
        ) readings
        WHERE ts < %s
        GROUP BY {group_by}
    """
    return sql, params


def _run_integrated(
    sql: str, params: list[Any], *, start: datetime, end: datetime, interval_s: float
) -> list[tuple[Any, ...]]:
    cap = gap_cap_s(interval_s)
    horizon = end + timedelta(seconds=cap)
    # SQLite's julianday() differences are exact to about 0.1 ms: a gap of exactly the cap must still count.
    cap_compared = cap + _GAP_TOLERANCE_S
    with connection.cursor() as cursor:
        cursor.execute(sql, [cap_compared, interval_s, *params, db_time(start), db_time(horizon), db_time(end)])
        return list(cursor.fetchall())


def gpu_bucket_stats(*, node_ids: list[int], start: datetime, end: datetime, interval_s: float) -> dict[GpuKey, GpuStats]:
    """Per GPU over [start, end): readings, Σ utilization, Σ power, and energy in joules (one query)."""
    if not node_ids:
        return {}
    sql, params = _integrated_sql(
        NodeSample._meta.db_table, partition="node_id, gpu_index", group_by="node_id, gpu_index",
        aggregates="COUNT(*), SUM(utilization), SUM(power_w), SUM(power_w * held_s)", node_ids=node_ids,
    )
    return {
        (node_id, gpu): GpuStats(samples=count, util_sum=util, power_sum=power, energy_j=energy)
        for node_id, gpu, count, util, power, energy in _run_integrated(
            sql, params, start=start, end=end, interval_s=interval_s
        )
    }


@dataclass(frozen=True)
class WorkerTokens:
    node_id: int
    role: str
    service_id: int | None
    prompt_tokens: float
    generation_tokens: float


def worker_bucket_tokens(*, node_ids: list[int], start: datetime, end: datetime, interval_s: float) -> list[WorkerTokens]:
    """Tokens the engines report over [start, end) (their rates integrated), by node, role and service (one query)."""
    if not node_ids:
        return []
    sql, params = _integrated_sql(
        WorkerSample._meta.db_table, partition="node_id, worker_name", group_by="node_id, role, service_id",
        aggregates="SUM(prompt_tokens_per_s * held_s), SUM(generation_tokens_per_s * held_s)", node_ids=node_ids,
    )
    return [
        WorkerTokens(node_id=node_id, role=role, service_id=service_id, prompt_tokens=prompt or 0.0,
                     generation_tokens=generation or 0.0)
        for node_id, role, service_id, prompt, generation in _run_integrated(
            sql, params, start=start, end=end, interval_s=interval_s
        )
    ]


def request_bucket_rows(*, resolution_s: int, start: datetime, end: datetime) -> list[ServiceRollup]:
    """Per service over [start, end): requests, those with both latencies, those meeting both SLOs, and the
    tokens of requests served `ok` (one query, plus one for the service ids)."""
    service_ids = list(Service.objects.values_list("id", flat=True))
    if not service_ids:
        return []
    ok = Q(status=RecordStatus.OK)
    grouped = (
        RequestRecord.objects.filter(service_id__in=service_ids, arrival_at__gte=start, arrival_at__lt=end)
        .order_by()
        .values("service_id")
        .annotate(
            n=Count("id"),
            timed=Count("id", filter=Q(ttft_s__isnull=False, tpot_s__isnull=False)),
            met=Count("id", filter=Q(ttft_s__lte=F("service__ttft_slo_s"), tpot_s__lte=F("service__tpot_slo_s"))),
            prompt=Sum("prompt_tokens", filter=ok),
            output=Sum("output_tokens", filter=ok),
        )
    )
    return [
        ServiceRollup(
            service_id=row["service_id"], resolution_s=resolution_s, bucket_start=start, requests=row["n"],
            requests_timed=row["timed"], requests_slo_met=row["met"], prompt_tokens=row["prompt"] or 0,
            output_tokens=row["output"] or 0,
        )
        for row in grouped
    ]


def minute_bucket(*, bucket_start: datetime, fleet: FleetSnapshot, interval_s: float) -> BucketRows:
    """The roll-up rows of one minute, from the raw samples and records in it."""
    resolution_s = Resolution.MINUTE
    end = bucket_start + timedelta(seconds=resolution_s)
    bucket_h = resolution_s / 3600.0
    node_ids = fleet.node_ids
    stats = gpu_bucket_stats(node_ids=node_ids, start=bucket_start, end=end, interval_s=interval_s)
    tokens = worker_bucket_tokens(node_ids=node_ids, start=bucket_start, end=end, interval_s=interval_s)

    by_node: dict[int, _Sums] = defaultdict(_Sums)
    by_pool: dict[tuple[int, str, int | None], _Sums] = defaultdict(_Sums)
    nodes = {node.id: node for node in fleet.nodes}
    for node in fleet.nodes:
        share = _held_share(node, bucket_start, end)
        for index in range(node.gpu_count):
            owner = fleet.owners.get((node.id, index), UNOWNED)
            for sums in (by_node[node.id], by_pool[(node.tier_id, owner.role, owner.service_id)]):
                sums.gpus += share
                sums.cost_usd += share * node.price_usd_per_gpu_h * bucket_h
    for (node_id, index), gpu in stats.items():
        node = nodes[node_id]
        owner = fleet.owners.get((node_id, index), UNOWNED)
        for sums in (by_node[node_id], by_pool[(node.tier_id, owner.role, owner.service_id)]):
            sums.samples += gpu.samples
            sums.util_sum += gpu.util_sum
            sums.power_sum += gpu.power_sum
            sums.energy_j += gpu.energy_j
    for worker in tokens:
        sums = by_pool[(nodes[worker.node_id].tier_id, worker.role, worker.service_id)]
        sums.prompt_tokens += worker.prompt_tokens
        sums.generation_tokens += worker.generation_tokens

    rows = BucketRows(resolution_s=resolution_s, bucket_start=bucket_start)
    for node_id, sums in by_node.items():
        util, power = sums.means()
        rows.nodes.append(NodeRollup(
            node_id=node_id, resolution_s=resolution_s, bucket_start=bucket_start, gpus=sums.gpus,
            gpu_util_mean=util, power_w_mean=power, energy_j=sums.energy_j, cost_usd=sums.cost_usd,
            samples=sums.samples,
        ))
    for (tier_id, role, service_id), sums in by_pool.items():
        util, power = sums.means()
        rows.pools.append(TierRollup(
            tier_id=tier_id, role=role, service_id=service_id, resolution_s=resolution_s, bucket_start=bucket_start,
            gpus=sums.gpus, gpu_util_mean=util, power_w_mean=power, energy_j=sums.energy_j, cost_usd=sums.cost_usd,
            prompt_tokens=sums.prompt_tokens, generation_tokens=sums.generation_tokens, samples=sums.samples,
        ))
    rows.services = request_bucket_rows(resolution_s=resolution_s, start=bucket_start, end=end)
    return rows


def _minute_sums(rows: QuerySet[Any], *group: str, **extra: Any) -> list[dict[str, Any]]:
    """Minute rows summed by `group`: GPU-minutes, utilization and power weighted by readings, energy, cost."""
    summed = rows.order_by().values(*group).annotate(
        gpu_sum=Sum("gpus"),
        util_w=Sum(F("gpu_util_mean") * F("samples"), output_field=FloatField()),
        power_w=Sum(F("power_w_mean") * F("samples"), output_field=FloatField()),
        n=Sum("samples"),
        energy=Sum("energy_j"),
        cost=Sum("cost_usd"),
        **extra,
    )
    return [dict(row) for row in summed]


def _measured(row: dict[str, Any], share: float) -> dict[str, Any]:
    """The measured fields of an hour row from its summed minute rows."""
    return {
        "gpus": row["gpu_sum"] * share, "gpu_util_mean": ratio(row["util_w"] or 0.0, row["n"]),
        "power_w_mean": ratio(row["power_w"] or 0.0, row["n"]), "energy_j": row["energy"], "cost_usd": row["cost"],
        "samples": row["n"],
    }


def hour_bucket(*, bucket_start: datetime) -> BucketRows:
    """The roll-up rows of one hour, from its minute rows (three queries). A minute without a row counts as
    nothing held and nothing drawn, as it did in the minute roll-ups."""
    resolution_s = Resolution.HOUR
    end = bucket_start + timedelta(seconds=resolution_s)
    share = Resolution.MINUTE / resolution_s
    key = {"resolution_s": resolution_s, "bucket_start": bucket_start}
    in_hour = Q(resolution_s=Resolution.MINUTE, bucket_start__gte=bucket_start, bucket_start__lt=end)
    rows = BucketRows(resolution_s=resolution_s, bucket_start=bucket_start)
    rows.nodes = [
        NodeRollup(node_id=row["node_id"], **key, **_measured(row, share))
        for row in _minute_sums(NodeRollup.objects.filter(in_hour), "node_id")
    ]
    rows.pools = [
        TierRollup(
            tier_id=row["tier_id"], role=row["role"], service_id=row["service_id"], **key, **_measured(row, share),
            prompt_tokens=row["prompt"], generation_tokens=row["generation"],
        )
        for row in _minute_sums(
            TierRollup.objects.filter(in_hour), "tier_id", "role", "service_id",
            prompt=Sum("prompt_tokens"), generation=Sum("generation_tokens"),
        )
    ]
    services = ServiceRollup.objects.filter(in_hour).order_by().values("service_id").annotate(
        n=Sum("requests"), timed=Sum("requests_timed"), met=Sum("requests_slo_met"),
        prompt=Sum("prompt_tokens"), output=Sum("output_tokens"),
    )
    rows.services = [
        ServiceRollup(
            service_id=row["service_id"], **key, requests=row["n"], requests_timed=row["timed"],
            requests_slo_met=row["met"], prompt_tokens=row["prompt"], output_tokens=row["output"],
        )
        for row in services
    ]
    return rows
