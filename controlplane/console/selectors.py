"""Reads that the console's pages need, across apps. Each costs a fixed number of queries, whatever the
number of rows: pages are paginated, and what sums over many rows (telemetry) is summed by the database
in the telemetry selectors this module calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet, Sum

from controlplane.accounts.models import AuditEvent
from controlplane.fleet.models import Assignment, GpuTier, Node, NodeStatus, Worker, WorkerStatus
from controlplane.fleet.selectors import node_list
from controlplane.planning.models import Plan, PlanStatus, RebalanceDecision, Rollout, RolloutStep
from controlplane.planning.selectors import plan_list
from controlplane.telemetry.accounting import gpu_readings_now
from controlplane.telemetry.models import NodeRollup, NodeSample, WorkerSample
from controlplane.telemetry.selectors import (
    SERIES_METRICS,
    Series,
    Summary,
    telemetry_series,
    telemetry_summary,
    window_of,
)
from controlplane.traffic.models import RequestRecord, Service, WorkloadProfile
from controlplane.traffic.selectors import profile_list


@dataclass(frozen=True)
class FleetSummary:
    nodes: int
    nodes_ready: int
    gpus: int
    services: int
    active_plans: int
    draft_plans: int


def fleet_summary() -> FleetSummary:
    nodes = Node.objects.aggregate(
        total=Count("id"), ready=Count("id", filter=Q(status=NodeStatus.READY)), gpus=Sum("gpu_count")
    )
    plans = Plan.objects.aggregate(
        active=Count("id", filter=Q(status=PlanStatus.ACTIVE)), drafts=Count("id", filter=Q(status=PlanStatus.DRAFT))
    )
    return FleetSummary(
        nodes=nodes["total"],
        nodes_ready=nodes["ready"],
        gpus=nodes["gpus"] or 0,
        services=Service.objects.count(),
        active_plans=plans["active"],
        draft_plans=plans["drafts"],
    )


# --- Overview ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overview:
    window: str
    summary: Summary
    series: dict[str, Series]
    fleet: FleetSummary

    @property
    def tokens_per_s(self) -> float:
        return self.summary.prompt_tokens_per_s + self.summary.generation_tokens_per_s


def overview(*, window: str, now: datetime) -> Overview:
    """The fleet's summary over `window` and each dashboard metric per bucket."""
    return Overview(
        window=window,
        summary=telemetry_summary(window_name=window, now=now),
        series={metric: telemetry_series(metric=metric, window_name=window, now=now) for metric in SERIES_METRICS},
        fleet=fleet_summary(),
    )


# --- Fleet -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierStatus:
    tier: str
    gpus: int
    counts: dict[str, int]

    @property
    def nodes(self) -> int:
        return sum(self.counts.values())


def nodes_by_tier_and_status() -> list[TierStatus]:
    """Per tier: its GPUs and its nodes counted by status (one query)."""
    counts: dict[str, dict[str, int]] = {}
    gpus: dict[str, int] = {}
    rows = Node.objects.order_by().values("tier__name", "status").annotate(n=Count("id"), gpus=Sum("gpu_count"))
    for row in rows:
        tier = row["tier__name"]
        counts.setdefault(tier, dict.fromkeys(NodeStatus.values, 0))[row["status"]] = row["n"]
        gpus[tier] = gpus.get(tier, 0) + (row["gpus"] or 0)
    return [TierStatus(tier, gpus[tier], counts[tier]) for tier in sorted(counts)]


def live_workers() -> Prefetch[Any]:
    return Prefetch(
        "workers", queryset=Worker.objects.exclude(status=WorkerStatus.STOPPED).select_related("service").order_by("name"),
        to_attr="live_workers",
    )


def fleet_nodes(*, tier: str | None = None, status: str | None = None) -> QuerySet[Node]:
    """Nodes with their tier and live workers (paginate before evaluating)."""
    nodes = node_list().prefetch_related(live_workers()).order_by("tier__name", "name")
    if tier:
        nodes = nodes.filter(tier__name=tier)
    if status:
        nodes = nodes.filter(status=status)
    return nodes


@dataclass(frozen=True)
class GpuGrid:
    """Fresh readings of the GPUs of some nodes, by (node name, GPU index)."""

    nodes: list[str]
    gpus: int
    utilization: dict[tuple[str, int], float]
    power_w: dict[tuple[str, int], float]
    max_power_w: float


def gpu_grid(nodes: list[Node], *, now: datetime) -> GpuGrid:
    """The latest reading of each GPU of `nodes` (one query)."""
    names = {node.pk: node.name for node in nodes}
    readings = gpu_readings_now(node_ids=list(names), now=now)
    return GpuGrid(
        nodes=[node.name for node in nodes],
        gpus=max((node.gpu_count for node in nodes), default=0),
        utilization={(names[node_id], gpu): reading.utilization for (node_id, gpu), reading in readings.items()},
        power_w={(names[node_id], gpu): reading.power_w for (node_id, gpu), reading in readings.items()},
        max_power_w=max((node.tier.tdp_w for node in nodes), default=700.0),
    )


def tier_names() -> list[str]:
    return list(GpuTier.objects.order_by("name").values_list("name", flat=True))


@dataclass(frozen=True)
class NodeDetail:
    node: Node
    workers: list[Worker]
    gpu_samples: list[tuple[datetime, int, float, float]]  # ts, gpu, utilization, power W
    worker_samples: list[tuple[datetime, str, float, float, float]]  # ts, worker, kv use, prompt tok/s, gen tok/s
    rollups: list[tuple[datetime, float | None, float | None, float]]  # bucket, util, power W mean, cost USD
    window: str

    def _by_worker(self, value: Callable[[tuple[Any, ...]], float]) -> dict[str, tuple[list[datetime], list[float]]]:
        series: dict[str, tuple[list[datetime], list[float]]] = {}
        for row in self.worker_samples:
            times, values = series.setdefault(row[1], ([], []))
            times.append(row[0])
            values.append(value(row))
        return series

    def tokens_by_worker(self) -> dict[str, tuple[list[datetime], list[float]]]:
        """Each worker's prompt + generation tokens per second over the last hour."""
        return self._by_worker(lambda row: row[3] + row[4])

    def kv_by_worker(self) -> dict[str, tuple[list[datetime], list[float]]]:
        """Each worker's KV cache use over the last hour."""
        return self._by_worker(lambda row: row[2])


RAW_SAMPLE_SPAN = timedelta(hours=1)


def node_detail(*, node: Node, window: str, now: datetime) -> NodeDetail:
    """A node's workers, its raw GPU and worker samples of the last hour, and its roll-ups over `window`."""
    since = now - RAW_SAMPLE_SPAN
    span = window_of(window, now=now)
    return NodeDetail(
        node=node,
        workers=list(Worker.objects.filter(node=node).select_related("service", "plan").order_by("status", "name")),
        gpu_samples=list(
            NodeSample.objects.filter(node=node, ts__gte=since).order_by("ts")
            .values_list("ts", "gpu_index", "utilization", "power_w")
        ),
        worker_samples=list(
            WorkerSample.objects.filter(node=node, ts__gte=since).order_by("ts")
            .values_list("ts", "worker_name", "kv_cache_usage", "prompt_tokens_per_s", "generation_tokens_per_s")
        ),
        rollups=list(
            NodeRollup.objects.filter(node=node, resolution_s=span.resolution_s, bucket_start__gte=span.start,
                                      bucket_start__lt=span.end)
            .order_by("bucket_start").values_list("bucket_start", "gpu_util_mean", "power_w_mean", "cost_usd")
        ),
        window=window,
    )


def assignment_history(node: Node) -> QuerySet[Assignment]:
    return Assignment.objects.filter(node=node).select_related("plan", "plan__service").order_by("-generation")


# --- Traffic -----------------------------------------------------------------------------------------

TRAFFIC_SPANS = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "1w": timedelta(weeks=1)}
# The histogram shows the latest requests: enough for the shape, few enough to read in one index scan.
LENGTH_SAMPLE = 5000
DRIFT_ALERTS = 20


@dataclass(frozen=True)
class Traffic:
    service: Service
    profiles: list[WorkloadProfile]
    prompt_lengths: list[int]
    output_lengths: list[int]
    drift: list[WorkloadProfile]
    latest: WorkloadProfile | None = None
    spans: dict[str, Any] = field(default_factory=dict)


def traffic(*, service: Service, span: str, now: datetime) -> Traffic:
    """One service's profiled windows over `span`, its latest requests' lengths and its drift alerts (three queries)."""
    profiles = list(
        WorkloadProfile.objects.filter(service=service, window_start__gte=now - TRAFFIC_SPANS[span])
        .order_by("window_start")
        .only("window_start", "window_end", "request_count", "arrival_rate_rps", "prompt_tokens_p50",
              "prompt_tokens_p90", "prompt_tokens_p99", "output_tokens_p50", "output_tokens_p90", "output_tokens_p99",
              "prefix_cache_share", "prefill_share", "prefill_gpu_s", "decode_gpu_s", "workload_class", "confidence",
              "forecast", "service_id")
    )
    lengths = list(
        RequestRecord.objects.filter(service=service).order_by("-arrival_at")
        .values_list("prompt_tokens", "output_tokens")[:LENGTH_SAMPLE]
    )
    drift = list(
        profile_list().filter(service=service, forecast__drift__changed=True).order_by("-window_start")[:DRIFT_ALERTS]
    )
    return Traffic(
        service=service, profiles=profiles, prompt_lengths=[row[0] for row in lengths],
        output_lengths=[row[1] for row in lengths], drift=drift, latest=profiles[-1] if profiles else None,
    )


# --- Plans and rollouts ------------------------------------------------------------------------------


def plans(*, service: str | None = None, status: str | None = None) -> QuerySet[Plan]:
    rows = plan_list()
    if service:
        rows = rows.filter(service__name=service)
    if status:
        rows = rows.filter(status=status)
    return rows


def plan_rollouts(plan: Plan) -> list[Rollout]:
    """The plan's rollouts, newest first, with their steps (two queries)."""
    steps = Prefetch("steps", queryset=RolloutStep.objects.order_by("index"))
    return list(
        Rollout.objects.filter(plan=plan).select_related("created_by", "previous_plan").prefetch_related(steps)
        .order_by("-created_at", "-id")
    )


def active_plan(service: Service) -> Plan | None:
    return Plan.objects.filter(service=service, status=PlanStatus.ACTIVE).first()


# --- Rebalancing and the audit log -------------------------------------------------------------------


def rebalance_decisions() -> QuerySet[RebalanceDecision]:
    """What each scheduled replan decided and why, newest first, with the plan and rollout it led to."""
    return RebalanceDecision.objects.select_related("service", "plan", "rollout").order_by("-at", "-id")


def rebalance_events() -> QuerySet[AuditEvent]:
    """The rebalancing's audit events (verbs `rebalance.*`), newest first."""
    return AuditEvent.objects.filter(verb__startswith="rebalance.").select_related("actor")
