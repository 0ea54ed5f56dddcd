"""Reads of telemetry shared by the API, the console and /metrics: raw samples, windows over the
roll-ups, and the summary and series the dashboards show.

Every read here costs a fixed number of queries, whatever the size of the fleet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import F, FloatField, QuerySet, Sum

from controlplane.planning.models import Plan, PlanStatus
from controlplane.telemetry.accounting import (
    FleetCost,
    Saving,
    colocated_baseline_usd_per_h,
    fleet_cost,
    fleet_snapshot,
    gpu_readings_now,
    ratio,
    usd_per_million_tokens,
)
from controlplane.telemetry.models import (
    NodeSample,
    PerfCorrection,
    Resolution,
    ServiceRollup,
    TierRollup,
    WorkerSample,
)
from controlplane.traffic.models import Service


def node_sample_list() -> QuerySet[NodeSample]:
    return NodeSample.objects.select_related("node")


def worker_sample_list() -> QuerySet[WorkerSample]:
    return WorkerSample.objects.select_related("node", "service")


def perf_correction_list() -> QuerySet[PerfCorrection]:
    return PerfCorrection.objects.all()


# --- Windows over the roll-ups -----------------------------------------------------------------------


@dataclass(frozen=True)
class WindowSpec:
    length: timedelta
    resolution_s: int


WINDOWS: dict[str, WindowSpec] = {
    "1h": WindowSpec(timedelta(hours=1), Resolution.MINUTE),
    "1d": WindowSpec(timedelta(days=1), Resolution.MINUTE),
    "1w": WindowSpec(timedelta(weeks=1), Resolution.HOUR),
}


@dataclass(frozen=True)
class Window:
    """Whole, closed buckets: [start, end), `end` the start of the bucket still open at `now`."""

    name: str
    start: datetime
    end: datetime
    resolution_s: int

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def buckets(self) -> list[datetime]:
        step = timedelta(seconds=self.resolution_s)
        count = int(self.seconds // self.resolution_s)
        return [self.start + step * index for index in range(count)]


def floor_time(moment: datetime, resolution_s: int) -> datetime:
    """The start of the bucket of `resolution_s` seconds that holds `moment` (buckets align to the Unix epoch)."""
    return datetime.fromtimestamp(int(moment.timestamp()) // resolution_s * resolution_s, tz=UTC)


def window_of(name: str, *, now: datetime) -> Window:
    spec = WINDOWS[name]
    end = floor_time(now, spec.resolution_s)
    return Window(name=name, start=end - spec.length, end=end, resolution_s=spec.resolution_s)


@dataclass(frozen=True)
class PoolTotal:
    """A pool's sums over a window (or one bucket) from TierRollup."""

    tier_id: int
    tier: str
    role: str
    service_id: int | None
    gpu_seconds: float
    util_weighted: float  # Σ gpu_util_mean x samples
    samples: int
    energy_j: float
    cost_usd: float
    prompt_tokens: float
    generation_tokens: float


def _pool_rows(*, window: Window, service_id: int | None, tier: str | None, role: str | None) -> QuerySet[TierRollup]:
    rows = TierRollup.objects.filter(
        resolution_s=window.resolution_s, bucket_start__gte=window.start, bucket_start__lt=window.end
    )
    if service_id is not None:
        rows = rows.filter(service_id=service_id)
    if tier is not None:
        rows = rows.filter(tier__name=tier)
    if role is not None:
        rows = rows.filter(role=role)
    return rows


def pool_totals(
    *, window: Window, service_id: int | None = None, tier: str | None = None, role: str | None = None
) -> list[PoolTotal]:
    """TierRollup summed over the window by (tier, role, service), optionally narrowed (one query)."""
    rows = _pool_rows(window=window, service_id=service_id, tier=tier, role=role)
    grouped = rows.order_by().values("tier_id", "tier__name", "role", "service_id").annotate(
        gpu_seconds=Sum(F("gpus") * window.resolution_s, output_field=FloatField()),
        util_weighted=Sum(F("gpu_util_mean") * F("samples"), output_field=FloatField()),
        sample_count=Sum("samples"),
        energy=Sum("energy_j"),
        cost=Sum("cost_usd"),
        prompt=Sum("prompt_tokens"),
        generation=Sum("generation_tokens"),
    )
    return [
        PoolTotal(
            tier_id=row["tier_id"], tier=row["tier__name"], role=row["role"], service_id=row["service_id"],
            gpu_seconds=row["gpu_seconds"] or 0.0, util_weighted=row["util_weighted"] or 0.0,
            samples=row["sample_count"] or 0, energy_j=row["energy"] or 0.0, cost_usd=row["cost"] or 0.0,
            prompt_tokens=row["prompt"] or 0.0, generation_tokens=row["generation"] or 0.0,
        )
        for row in grouped
    ]


@dataclass(frozen=True)
class ServiceTotal:
    requests: int
    requests_timed: int
    requests_slo_met: int
    prompt_tokens: int
    output_tokens: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


def service_totals(*, window: Window, service_id: int | None = None) -> dict[int, ServiceTotal]:
    """ServiceRollup summed over the window, by service id (one query)."""
    rows = ServiceRollup.objects.filter(
        resolution_s=window.resolution_s, bucket_start__gte=window.start, bucket_start__lt=window.end
    )
    if service_id is not None:
        rows = rows.filter(service_id=service_id)
    grouped = rows.order_by().values("service_id").annotate(
        n=Sum("requests"), timed=Sum("requests_timed"), met=Sum("requests_slo_met"),
        prompt=Sum("prompt_tokens"), output=Sum("output_tokens"),
    )
    return {
        row["service_id"]: ServiceTotal(
            requests=row["n"] or 0, requests_timed=row["timed"] or 0, requests_slo_met=row["met"] or 0,
            prompt_tokens=row["prompt"] or 0, output_tokens=row["output"] or 0,
        )
        for row in grouped
    }


@dataclass(frozen=True)
class BucketTotal:
    bucket_start: datetime
    util_weighted: float
    samples: int
    energy_j: float
    cost_usd: float
    tokens: float


def pool_series(
    *, window: Window, service_id: int | None = None, tier: str | None = None, role: str | None = None
) -> dict[datetime, BucketTotal]:
    """TierRollup summed per bucket over the window, optionally narrowed (one query)."""
    rows = _pool_rows(window=window, service_id=service_id, tier=tier, role=role)
    grouped = rows.order_by().values("bucket_start").annotate(
        util_weighted=Sum(F("gpu_util_mean") * F("samples"), output_field=FloatField()),
        sample_count=Sum("samples"),
        energy=Sum("energy_j"),
        cost=Sum("cost_usd"),
        tokens=Sum(F("prompt_tokens") + F("generation_tokens"), output_field=FloatField()),
    )
    return {
        row["bucket_start"]: BucketTotal(
            bucket_start=row["bucket_start"], util_weighted=row["util_weighted"] or 0.0,
            samples=row["sample_count"] or 0, energy_j=row["energy"] or 0.0, cost_usd=row["cost"] or 0.0,
            tokens=row["tokens"] or 0.0,
        )
        for row in grouped
    }


# --- What the dashboards, the API and /metrics show ---------------------------------------------------


@dataclass(frozen=True)
class PoolUtilization:
    tier: str
    role: str
    gpus: float  # mean GPUs held over the window
    utilization: float | None


@dataclass(frozen=True)
class ServiceAttainment:
    service: str
    attainment: float | None
    requests_timed: int
    target: float


@dataclass(frozen=True)
class ServiceSaving:
    service: str
    baseline_usd_per_h: float
    cost_usd_per_h: float
    saving_usd_per_h: float
    saving_share: float | None


@dataclass(frozen=True)
class SavingSummary:
    baseline_usd_per_h: float
    cost_usd_per_h: float
    saving_usd_per_h: float
    saving_share: float | None
    services: list[ServiceSaving]


@dataclass(frozen=True)
class Summary:
    window: str
    window_start: datetime
    window_end: datetime
    resolution_s: int
    service: str | None
    cost_usd_per_h: float
    power_kw: float | None
    gpus: int
    gpus_reporting: int
    cost_usd: float
    energy_kwh: float
    utilization: float | None
    utilization_by_tier: dict[str, float | None]
    utilization_by_role: dict[str, float | None]
    utilization_by_pool: list[PoolUtilization]
    prompt_tokens_per_s: float
    generation_tokens_per_s: float
    served_prompt_tokens: int
    served_output_tokens: int
    usd_per_million_tokens: float | None
    tokens_per_joule: float | None
    attainment: list[ServiceAttainment]
    saving_vs_colocated: SavingSummary | None


def _utilization(totals: Sequence[PoolTotal], key: Any) -> dict[Any, float | None]:
    weighted: dict[Any, list[float]] = {}
    for total in totals:
        sums = weighted.setdefault(key(total), [0.0, 0.0])
        sums[0] += total.util_weighted
        sums[1] += total.samples
    return {name: ratio(util, samples) for name, (util, samples) in sorted(weighted.items())}


def _savings(services: Sequence[Service], cost: FleetCost) -> SavingSummary | None:
    """Each service's cost now against what its active plan's colocated baseline was predicted to cost."""
    plans = dict(
        Plan.objects.filter(service__in=services, status=PlanStatus.ACTIVE).values_list("service_id", "baselines")
    )
    rows = []
    for service in services:
        baseline = colocated_baseline_usd_per_h(plans.get(service.pk))
        if baseline is None:
            continue
        saving = Saving(baseline_usd_per_h=baseline, cost_usd_per_h=cost.by_service.get(service.name, 0.0))
        rows.append(ServiceSaving(
            service=service.name, baseline_usd_per_h=baseline, cost_usd_per_h=saving.cost_usd_per_h,
            saving_usd_per_h=saving.saving_usd_per_h, saving_share=saving.saving_share,
        ))
    if not rows:
        return None
    total = Saving(
        baseline_usd_per_h=sum(row.baseline_usd_per_h for row in rows),
        cost_usd_per_h=sum(row.cost_usd_per_h for row in rows),
    )
    return SavingSummary(
        baseline_usd_per_h=total.baseline_usd_per_h, cost_usd_per_h=total.cost_usd_per_h,
        saving_usd_per_h=total.saving_usd_per_h, saving_share=total.saving_share, services=rows,
    )


def telemetry_summary(*, window_name: str, now: datetime, service: Service | None = None) -> Summary:
    """Cost and power now; energy, utilization, tokens, $/Mtok, tokens/J, attainment over the window; the
    saving against the colocated baselines. Narrowed to one service's GPUs and requests when given.

    $/Mtok and tokens/J count the tokens served: prompt + output tokens of the requests that arrived in
    the window and finished ok, each request once, from the routers' records. (Engine counters are per
    worker: under disaggregation a prompt may be counted by its prefill worker and again by the decode
    worker that takes its KV.) Tokens/s are the engines' own rates, as the engines report them.
    """
    window = window_of(window_name, now=now)
    fleet = fleet_snapshot()
    cost = fleet_cost(fleet.nodes, fleet.owners)
    readings = gpu_readings_now(node_ids=fleet.node_ids, now=now)
    held = set(fleet.owners)
    if service is not None:
        held = {key for key, owner in fleet.owners.items() if owner.service_id == service.pk}
        readings = {key: reading for key, reading in readings.items() if key in held}
    pools = pool_totals(window=window, service_id=service.pk if service else None)
    services = [service] if service is not None else list(Service.objects.order_by("name"))
    served = service_totals(window=window, service_id=service.pk if service else None)

    energy_j = sum(pool.energy_j for pool in pools)
    cost_usd = sum(pool.cost_usd for pool in pools)
    served_prompt = sum(total.prompt_tokens for total in served.values())
    served_output = sum(total.output_tokens for total in served.values())
    by_pool = _utilization(pools, lambda pool: (pool.tier, pool.role))
    gpu_seconds: dict[tuple[str, str], float] = {}
    for pool in pools:
        gpu_seconds[(pool.tier, pool.role)] = gpu_seconds.get((pool.tier, pool.role), 0.0) + pool.gpu_seconds
    attainment = []
    for row in services:
        total = served.get(row.pk)
        timed = total.requests_timed if total else 0
        attainment.append(ServiceAttainment(
            service=row.name, attainment=ratio(total.requests_slo_met, timed) if total else None,
            requests_timed=timed, target=row.attainment_target,
        ))
    return Summary(
        window=window.name, window_start=window.start, window_end=window.end, resolution_s=window.resolution_s,
        service=service.name if service else None,
        cost_usd_per_h=cost.by_service.get(service.name, 0.0) if service else cost.total_usd_per_h,
        power_kw=sum(reading.power_w for reading in readings.values()) / 1000 if readings else None,
        gpus=len(held),
        gpus_reporting=len(readings),
        cost_usd=cost_usd,
        energy_kwh=energy_j / 3.6e6,
        utilization=_utilization(pools, lambda pool: "all").get("all"),
        utilization_by_tier=_utilization(pools, lambda pool: pool.tier),
        utilization_by_role=_utilization(pools, lambda pool: pool.role),
        utilization_by_pool=[
            PoolUtilization(tier=tier, role=role, gpus=gpu_seconds[(tier, role)] / window.seconds, utilization=util)
            for (tier, role), util in by_pool.items()
        ],
        prompt_tokens_per_s=sum(pool.prompt_tokens for pool in pools) / window.seconds,
        generation_tokens_per_s=sum(pool.generation_tokens for pool in pools) / window.seconds,
        served_prompt_tokens=served_prompt,
        served_output_tokens=served_output,
        usd_per_million_tokens=usd_per_million_tokens(cost_usd, served_prompt + served_output),
        tokens_per_joule=ratio(served_prompt + served_output, energy_j),
        attainment=attainment,
        saving_vs_colocated=_savings(services, cost),
    )


SERIES_METRICS: dict[str, str] = {
    "cost_usd_per_h": "USD/h",
    "power_kw": "kW",
    "gpu_util": "ratio",
    "tokens_per_s": "tokens/s",
}


@dataclass(frozen=True)
class Series:
    metric: str
    unit: str
    window: str
    resolution_s: int
    start: datetime
    end: datetime
    x: list[datetime]
    y: list[float | None]


def _series_value(metric: str, bucket: BucketTotal | None, resolution_s: int) -> float | None:
    if bucket is None:
        return None
    if metric == "cost_usd_per_h":
        return bucket.cost_usd * 3600.0 / resolution_s
    if metric == "power_kw":
        return bucket.energy_j / resolution_s / 1000.0
    if metric == "gpu_util":
        return ratio(bucket.util_weighted, bucket.samples)
    return bucket.tokens / resolution_s


def telemetry_series(
    *, metric: str, window_name: str, now: datetime, service: Service | None = None, tier: str | None = None,
    role: str | None = None,
) -> Series:
    """One metric per bucket over the window, from TierRollup: every bucket is there, None where none was
    rolled up. Tokens/s are the engines' prompt + generation rates."""
    window = window_of(window_name, now=now)
    buckets = pool_series(window=window, service_id=service.pk if service else None, tier=tier, role=role)
    x = window.buckets()
    return Series(
        metric=metric, unit=SERIES_METRICS[metric], window=window.name, resolution_s=window.resolution_s,
        start=window.start, end=window.end, x=x,
        y=[_series_value(metric, buckets.get(moment), window.resolution_s) for moment in x],
    )
