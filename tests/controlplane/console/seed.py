"""A small living fleet in the database, for the console's tests: services, nodes with workers and fresh
GPU readings, roll-ups, profiles with a drift alert, records, plans (active, draft, one rolling out),
classifier versions and audit events. `size` multiplies the rows, for the query-count tests."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from controlplane.accounts.models import AuditEvent
from controlplane.fleet.models import Assignment, GpuTier, Node, Worker
from controlplane.planning.models import Plan, RebalanceDecision, Rollout, RolloutStep
from controlplane.telemetry.models import NodeRollup, NodeSample, ServiceRollup, TierRollup, WorkerSample
from controlplane.traffic.models import ClassifierModel, RequestRecord, Service, WorkloadProfile

TIERS = ("H100-SXM-80GB", "A100-SXM-80GB")


@dataclass
class Seeded:
    services: list[Service]
    nodes: list[Node]
    active: Plan
    draft: Plan
    rolling: Plan
    rollout: Rollout
    classifiers: list[ClassifierModel]


def placement(nodes: list[Node], service: str) -> list[dict]:
    return [
        {"node": node.name, "workers": [
            {"name": f"{service}-prefill-0", "role": "prefill", "engine": "sim", "model": "llama-3.1-8b", "tp": 1,
             "gpu_ids": [0, 1, 2, 3], "port": 8100, "tier": node.tier.name, "dtype": "bf16", "service": service,
             "engine_args": {}},
            {"name": f"{service}-decode-0", "role": "decode", "engine": "sim", "model": "llama-3.1-8b", "tp": 1,
             "gpu_ids": [4, 5, 6, 7], "port": 8101, "tier": node.tier.name, "dtype": "bf16", "service": service,
             "engine_args": {}},
        ]}
        for node in nodes
    ]


def predictions(cost: float, power: float, attainment: float) -> dict:
    return {"mode": "disaggregated", "cost_usd_per_h": cost, "power_kw": power, "gpus": 16, "rate_rps": 12.0,
            "goodput_rps": 11.5, "slo_attainment": attainment, "meets_slo": attainment >= 0.9,
            "usd_per_million_tokens": 0.42, "tokens_per_joule": 3.1, "simulated": True, "chunk_tokens": 512}


BASELINES = {
    "colocated_best_single_tier": {**predictions(90.0, 11.0, 0.93), "mode": "colocated", "feasible": True,
                                   "tier": "H100-SXM-80GB"},
    "disaggregated_single_tier": {**predictions(82.0, 10.0, 0.92), "feasible": True, "tier": "A100-SXM-80GB"},
}


def seed(*, now: datetime, size: int = 1, tag: str = "") -> Seeded:
    """The fleet; `tag` names a second one beside it (the query-count tests grow the rows that way)."""
    services = [
        Service.objects.create(name=f"chat{tag}{suffix}", model_name="llama-3.1-8b", ttft_slo_s=1.0, tpot_slo_s=0.1)
        for suffix in ["", *[f"-{i}" for i in range(1, 2 * size)]]
    ]
    chat = services[0]
    tiers = {tier.name: tier for tier in GpuTier.objects.filter(name__in=TIERS)}
    nodes = [
        Node.objects.create(name=f"gpu{tag}-{index:03d}", tier=tiers[TIERS[index % 2]], gpu_count=8, status="ready",
                            last_heartbeat_at=now - timedelta(seconds=3), generation_desired=2, generation_applied=2)
        for index in range(4 * size)
    ]
    for node in nodes:
        node.tier = tiers[node.tier.name]

    active = Plan.objects.create(
        service=chat, status="active", instances=[{"tier": "H100-SXM-80GB", "tp": 1, "role": "prefill", "count": 1},
                                                  {"tier": "H100-SXM-80GB", "tp": 1, "role": "decode", "count": 1},
                                                  {"tier": "A100-SXM-80GB", "tp": 1, "role": "prefill", "count": 1},
                                                  {"tier": "A100-SXM-80GB", "tp": 1, "role": "decode", "count": 1}],
        placement=placement(nodes[:2], chat.name), predictions=predictions(48.0, 7.5, 0.95), baselines=BASELINES,
        predicted_cost_usd_per_h=48.0, predicted_power_kw=7.5, activated_at=now - timedelta(days=1),
        created_at=now - timedelta(days=2),
    )
    draft = Plan.objects.create(
        service=chat, status="draft", instances=[{"tier": "A100-SXM-80GB", "tp": 1, "role": "prefill", "count": 2},
                                                 {"tier": "A100-SXM-80GB", "tp": 1, "role": "decode", "count": 2},
                                                 {"tier": "H100-SXM-80GB", "tp": 1, "role": "decode", "count": 1}],
        placement=placement(nodes[1:], chat.name), predictions=predictions(40.0, 6.5, 0.94), baselines=BASELINES,
        predicted_cost_usd_per_h=40.0, predicted_power_kw=6.5, reason="scheduled replan: saves 17%",
        created_at=now - timedelta(minutes=30),
    )
    rolling = Plan.objects.create(
        service=services[-1] if len(services) > 1 else chat, status="rolling_out", placement=placement(nodes[:1], "x"),
        predictions=predictions(30.0, 5.0, 0.91), baselines=BASELINES, predicted_cost_usd_per_h=30.0,
        predicted_power_kw=5.0, created_at=now - timedelta(minutes=20),
    )
    for index in range(3 * size):  # older plans, for the list's pages
        Plan.objects.create(service=services[index % len(services)], status="superseded",
                            predictions=predictions(50.0, 8.0, 0.9), predicted_cost_usd_per_h=50.0,
                            predicted_power_kw=8.0, created_at=now - timedelta(days=3, hours=index))
    rollout = Rollout.objects.create(service=rolling.service, plan=rolling, strategy="canary", status="running",
                                     started_at=now - timedelta(minutes=5))
    RolloutStep.objects.bulk_create([
        RolloutStep(rollout=rollout, index=0, kind="start", params={"nodes": [nodes[0].name]}, status="done",
                    detail={"assignments": {nodes[0].name: 1}}, finished_at=now - timedelta(minutes=4)),
        RolloutStep(rollout=rollout, index=1, kind="wait_ready", params={"nodes": [nodes[0].name]}, status="done",
                    detail={"ready": ["gpu-000/x-prefill-0"]}, finished_at=now - timedelta(minutes=3)),
        RolloutStep(rollout=rollout, index=2, kind="route", params={"share": 0.1}, status="done"),
        RolloutStep(rollout=rollout, index=3, kind="observe", params={"duration_s": 120}, status="claimed",
                    detail={"comparison": {"promote": True, "reason": "within tolerance",
                                           "old": {"requests": 90, "attainment": 0.93, "usd_per_million_tokens": 0.5},
                                           "new": {"requests": 10, "attainment": 0.95,
                                                   "usd_per_million_tokens": 0.4}}}),
        RolloutStep(rollout=rollout, index=4, kind="activate", params={}, status="pending"),
    ])

    workers = []
    for node in nodes:
        workers.append(Worker(node=node, name="prefill-0", role="prefill", gpu_ids=[0, 1, 2, 3], service=chat,
                              plan=active, status="ready"))
        workers.append(Worker(node=node, name="decode-0", role="decode", gpu_ids=[4, 5, 6], service=chat, plan=active,
                              status="ready"))
        workers.append(Worker(node=node, name="old-0", role="decode", gpu_ids=[7], service=chat, status="stopped"))
    Worker.objects.bulk_create(workers)
    Assignment.objects.bulk_create(
        Assignment(node=node, generation=generation, plan=active, workers=placement([node], chat.name)[0]["workers"],
                   created_at=now - timedelta(hours=generation), pushed_at=now - timedelta(hours=generation))
        for node in nodes for generation in range(1, 3)
    )

    samples = [
        NodeSample(node=node, gpu_index=gpu, ts=now - timedelta(seconds=seconds), utilization=0.3 + 0.05 * gpu,
                   power_w=250.0 + 30 * gpu)
        for node in nodes for gpu in range(8) for seconds in (5, 15, 25)
    ]
    NodeSample.objects.bulk_create(samples)
    WorkerSample.objects.bulk_create(
        WorkerSample(node=node, worker_name=name, service=chat, role=role, ts=now - timedelta(seconds=seconds),
                     requests_running=4, kv_cache_usage=0.4, prompt_tokens_per_s=900.0, generation_tokens_per_s=300.0)
        for node in nodes for name, role in (("prefill-0", "prefill"), ("decode-0", "decode")) for seconds in (5, 15)
    )

    minute = now.replace(second=0, microsecond=0)
    hour = now.replace(minute=0, second=0, microsecond=0)
    pools: list[TierRollup] = []
    node_rollups: list[NodeRollup] = []
    service_rollups: list[ServiceRollup] = []
    for resolution, start, count in ((60, minute, 90), (3600, hour, 48)):
        for step in range(1, count + 1):
            bucket = start - timedelta(seconds=resolution * step)
            # A daily rhythm and a plan change (fewer GPUs since) make the charts look like a fleet's.
            load = 0.5 + 0.25 * math.sin(bucket.timestamp() / 86400 * 2 * math.pi) + 0.05 * math.sin(step / 3)
            held = 8.0 * size * (1.0 if step < count // 2 else 1.25)
            for tier in tiers.values():
                for role in ("prefill", "decode") if tag else ("prefill", "decode", "idle"):
                    util = 0.1 if role == "idle" else load
                    pools.append(TierRollup(
                        tier=tier, role=role, service=None if role == "idle" else chat, resolution_s=resolution,
                        bucket_start=bucket, gpus=held, gpu_util_mean=util, power_w_mean=100 + 500 * util,
                        energy_j=(100 + 500 * util) * held * resolution,
                        cost_usd=float(tier.price_usd_per_gpu_h) * held * resolution / 3600,
                        prompt_tokens=2000.0 * load * resolution, generation_tokens=600.0 * load * resolution,
                        samples=48 * size,
                    ))
            node_rollups.extend(
                NodeRollup(node=node, resolution_s=resolution, bucket_start=bucket, gpus=8.0, gpu_util_mean=load,
                           power_w_mean=100 + 500 * load, energy_j=(100 + 500 * load) * 8 * resolution, cost_usd=0.4,
                           samples=48)
                for node in nodes
            )
            service_rollups.extend(
                ServiceRollup(service=service, resolution_s=resolution, bucket_start=bucket, requests=600,
                              requests_timed=600, requests_slo_met=int(600 * (0.97 - 0.06 * load)),
                              prompt_tokens=600_000, output_tokens=180_000)
                for service in services
            )
    TierRollup.objects.bulk_create(pools)
    NodeRollup.objects.bulk_create(node_rollups)
    ServiceRollup.objects.bulk_create(service_rollups)

    window = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    profiles = []
    for step in range(1, 24 * size + 1):
        start = window - timedelta(minutes=5 * step)
        drifted = step == 2
        profiles.append(WorkloadProfile(
            service=chat, window_start=start, window_end=start + timedelta(minutes=5), request_count=3000,
            arrival_rate_rps=10.0 + step % 4, prompt_tokens_p50=800, prompt_tokens_p90=2400, prompt_tokens_p99=6000,
            output_tokens_p50=200, output_tokens_p90=600, output_tokens_p99=1200, prefix_cache_share=0.3,
            prefill_share=0.7 if drifted else 0.45, prefill_share_se=0.02, prefill_gpu_s=700.0, decode_gpu_s=300.0,
            workload_class="prefill-heavy" if drifted else "balanced", confidence=0.92,
            forecast={"next_class": "balanced", "next_confidence": 0.8, "next_rate_rps": 11.0,
                      "drift": {"changed": drifted, "from": "balanced", "to": "prefill-heavy" if drifted else "balanced",
                                "rate_change": 0.3 if drifted else 0.0,
                                "reason": "the class moved from balanced to prefill-heavy" if drifted else "steady"}},
        ))
    WorkloadProfile.objects.bulk_create(profiles)
    RequestRecord.objects.bulk_create(
        RequestRecord(id=uuid.uuid4(), service=chat, arrival_at=now - timedelta(seconds=index),
                      prompt_tokens=100 + 37 * index % 4000, output_tokens=20 + 13 * index % 900, ttft_s=0.3,
                      tpot_s=0.03)
        for index in range(100 * size)
    )

    classifiers = [
        ClassifierModel.objects.create(
            kind="admission", version=f"admission{tag}-{index:04d}", is_active=index == 1 and not tag, created_at=now - timedelta(days=index),
            metrics={"macro_f1": 0.7 + index / 100, "baseline_macro_f1": 0.55, "accuracy": 0.8, "brier": 0.2,
                     "ece": 0.03, "train_rows": 5000},
        )
        for index in range(1, 2 + size)
    ]
    classifiers.append(ClassifierModel.objects.create(
        kind="workload", version=f"workload{tag}-0001", is_active=not tag,
        metrics={"model": {"share_mae": 0.03, "windows": 100}, "persistence": {"share_mae": 0.05, "windows": 100}},
    ))
    RebalanceDecision.objects.bulk_create(
        RebalanceDecision(service=chat, at=now - timedelta(minutes=15 * index), proposed=index == 0,
                          plan=draft if index == 0 else None,
                          reason="saves 17% over the active plan" if index == 0 else "saving 3% is under 10%")
        for index in range(4 * size)
    )
    AuditEvent.objects.bulk_create(
        AuditEvent(at=now - timedelta(minutes=index), actor_label="system:beat",
                   verb="rebalance.propose" if index % 2 else "rebalance.keep", object_type="traffic.service",
                   object_id=str(chat.pk), object_repr=chat.name,
                   after={"reason": "saves 17% over the active plan" if index % 2 else "saving 3% is under 10%"})
        for index in range(10 * size)
    )
    return Seeded(services=services, nodes=nodes, active=active, draft=draft, rolling=rolling, rollout=rollout,
                  classifiers=classifiers)
