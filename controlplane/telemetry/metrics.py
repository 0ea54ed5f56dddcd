"""The control plane's /metrics: fleet gauges in Prometheus text, read from the accounting at scrape time.

A custom collector on a registry of its own reads the database on every scrape: no process holds
global gauges that could go stale or differ between web workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from controlplane.fleet.models import Node, NodeStatus
from controlplane.telemetry.accounting import (
    IDLE,
    fleet_cost,
    fleet_snapshot,
    gpu_readings_now,
    ratio,
    worker_rates_now,
)
from controlplane.telemetry.selectors import service_totals, window_of
from controlplane.traffic.models import Service


@dataclass(frozen=True)
class FleetGauges:
    cost_usd_per_h: dict[tuple[str, str], float]  # (service or "", tier)
    power_w: dict[str, float]  # tier: fresh readings
    gpu_utilization: dict[tuple[str, str], float]  # (tier, role): fresh readings
    slo_attainment: dict[str, float]  # service: over the last hour
    nodes: dict[str, int]  # status
    tokens_per_s: dict[str, float]  # service or "": the engines' latest rates


def fleet_gauges(*, now: datetime) -> FleetGauges:
    """Everything /metrics exposes (a fixed handful of queries)."""
    fleet = fleet_snapshot()
    cost = fleet_cost(fleet.nodes, fleet.owners)
    tiers = {node.id: node.tier for node in fleet.nodes}
    power_w = dict.fromkeys(sorted(set(tiers.values())), 0.0)
    util: dict[tuple[str, str], list[float]] = {}
    for (node_id, index), reading in gpu_readings_now(node_ids=fleet.node_ids, now=now).items():
        tier = tiers[node_id]
        power_w[tier] += reading.power_w
        owner = fleet.owners.get((node_id, index))
        util.setdefault((tier, owner.role if owner else IDLE), []).append(reading.utilization)
    services = dict(Service.objects.values_list("id", "name"))
    tokens: dict[str, float] = {}
    for rate in worker_rates_now(node_ids=fleet.node_ids, now=now):
        name = services.get(rate.service_id, "") if rate.service_id is not None else ""
        tokens[name] = tokens.get(name, 0.0) + rate.prompt_tokens_per_s + rate.generation_tokens_per_s
    attainment = {}
    for service_id, total in service_totals(window=window_of("1h", now=now)).items():
        share = ratio(total.requests_slo_met, total.requests_timed)
        if share is not None and service_id in services:
            attainment[services[service_id]] = share
    nodes = dict.fromkeys(NodeStatus.values, 0)
    for status, count in Node.objects.order_by().values("status").annotate(n=Count("id")).values_list("status", "n"):
        nodes[status] = count
    return FleetGauges(
        cost_usd_per_h=cost.by_service_tier, power_w=power_w,
        gpu_utilization={key: sum(values) / len(values) for key, values in util.items()},
        slo_attainment=attainment, nodes=nodes, tokens_per_s=tokens,
    )


class FleetCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        gauges = fleet_gauges(now=timezone.now())
        cost = GaugeMetricFamily(
            "cleave_cost_usd_per_hour", "What the GPUs held cost per hour now, by the service holding them "
            "(empty: idle) and tier.", labels=["service", "tier"],
        )
        for (service, tier), value in sorted(gauges.cost_usd_per_h.items()):
            cost.add_metric([service, tier], value)
        yield cost
        power = GaugeMetricFamily("cleave_power_watts", "Power drawn by the GPUs of a tier (latest readings).",
                                  labels=["tier"])
        for tier, value in sorted(gauges.power_w.items()):
            power.add_metric([tier], value)
        yield power
        util = GaugeMetricFamily(
            "cleave_gpu_utilization", "Mean GPU utilization (0..1, latest readings) by tier and worker role.",
            labels=["tier", "role"],
        )
        for (tier, role), value in sorted(gauges.gpu_utilization.items()):
            util.add_metric([tier, role], value)
        yield util
        attainment = GaugeMetricFamily(
            "cleave_slo_attainment", "Share of the last hour's requests that met both latency SLOs.", labels=["service"]
        )
        for service, value in sorted(gauges.slo_attainment.items()):
            attainment.add_metric([service], value)
        yield attainment
        nodes = GaugeMetricFamily("cleave_nodes", "Nodes by status.", labels=["status"])
        for status, count in sorted(gauges.nodes.items()):
            nodes.add_metric([status], count)
        yield nodes
        tokens = GaugeMetricFamily(
            "cleave_tokens_per_second", "Prompt and generation tokens per second the engines report, by service.",
            labels=["service"],
        )
        for service, value in sorted(gauges.tokens_per_s.items()):
            tokens.add_metric([service], value)
        yield tokens


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(FleetCollector())


def exposition(accept_header: str) -> tuple[bytes, str]:
    """The gauges encoded as the scraper asked (Prometheus text by default, OpenMetrics on request)."""
    encoder, content_type = choose_encoder(accept_header)
    return encoder(REGISTRY), content_type
