"""Samples per second through `POST /api/v1/telemetry/samples` into PostgreSQL, and what roll-ups cost.

    python bench/telemetry_ingest.py [--json] [--nodes N] [--intervals K] [--rounds R] [--rollup-nodes M]

Ingest: N nodes register the way agents do (bootstrap token -> node token), then each sends R batches
shaped like an agent's: its 8 GPUs' readings for K reporting intervals, and its 2 engine workers'
metrics for the same intervals. The whole endpoint is measured in process (authentication, JSON
parsing, validation, the COPY), single-threaded; web workers scale it out. The target is a
10,000-GPU fleet reporting every 10 s with room to spare: at least 5,000 samples/s. Cost grows
linearly with the samples; per request there is a fixed part (token lookup, service names), so
bigger batches (larger K) go faster.

Roll-ups, at the scale of M nodes (default 1,250: 10,000 GPUs, 2,500 workers): the seconds to roll
one minute of raw samples up (60,000 GPU readings, 15,000 worker readings, the minute's request
records), and to roll one hour of minute roll-ups up into an hour (75,000 node-minute rows). Both
grow linearly with the fleet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import add_json_flag, emit
from bench.django_env import setup_postgres_django

NAME = "telemetry_ingest"
GPUS_PER_NODE = 8
WORKERS_PER_NODE = 2
INTERVAL_S = 10
# Roll-up data lives far from any real time, so it never mixes with a demo's.
ROLLUP_HOUR = datetime(2031, 1, 1, 0, tzinfo=UTC)


def agent_batch(ts0: float, intervals: int) -> dict:
    node_samples = [
        {"ts": ts0 + k * INTERVAL_S, "gpu_index": gpu, "utilization": 0.4 + 0.05 * gpu, "power_w": 350.0 + 20 * gpu,
         "memory_used_bytes": 60 * 2**30, "memory_total_bytes": 80 * 2**30, "temperature_c": 55.0 + gpu}
        for k in range(intervals) for gpu in range(GPUS_PER_NODE)
    ]
    worker_samples = [
        {"ts": ts0 + k * INTERVAL_S, "worker": f"{role}-0", "role": role, "service": "bench-telemetry",
         "requests_running": 24, "requests_waiting": 3, "kv_cache_usage": 0.55,
         "prompt_tokens_per_s": 8000.0 if role == "prefill" else 0.0,
         "generation_tokens_per_s": 0.0 if role == "prefill" else 1500.0, "ttft_p50_s": 0.2, "ttft_p90_s": 0.4,
         "itl_p50_s": 0.02, "itl_p90_s": 0.03}
        for k in range(intervals) for role in ("prefill", "decode")
    ]
    return {"node_samples": node_samples, "worker_samples": worker_samples}


def bench_ingest(*, nodes: int, intervals: int, rounds: int) -> dict:
    from django.test import Client

    from controlplane.accounts.models import User
    from controlplane.accounts.services import token_create
    from controlplane.fleet.models import Node
    from controlplane.telemetry.models import NodeSample, WorkerSample

    Node.objects.filter(name__startswith="bench-tel-").delete()
    agents, _ = User.objects.get_or_create(username="bench-agents", defaults={"role": "agent"})
    _, bootstrap = token_create(actor=None, user=agents, name="bench bootstrap", scope="bootstrap")
    register = Client(HTTP_AUTHORIZATION=f"Bearer {bootstrap}")
    clients = []
    for index in range(nodes):
        response = register.post(
            "/api/v1/nodes/register",
            {"name": f"bench-tel-{index:04d}", "tier": "H100-SXM-80GB", "gpu_count": GPUS_PER_NODE,
             "agent_url": f"http://10.0.{index // 250}.{index % 250}:9000"},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content[:500]
        clients.append(Client(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}"))

    start = time.time() - rounds * intervals * INTERVAL_S - 60
    bodies = [
        [json.dumps(agent_batch(start + r * intervals * INTERVAL_S, intervals)) for _ in clients]
        for r in range(rounds)
    ]
    per_batch = intervals * (GPUS_PER_NODE + WORKERS_PER_NODE)
    began = time.perf_counter()
    for round_bodies in bodies:
        for client, body in zip(clients, round_bodies, strict=True):
            response = client.post("/api/v1/telemetry/samples", body, content_type="application/json")
            assert response.status_code == 200, response.content[:500]
    elapsed = time.perf_counter() - began
    requests = rounds * len(clients)
    samples = requests * per_batch
    node_ids = list(Node.objects.filter(name__startswith="bench-tel-").values_list("id", flat=True))
    stored = (NodeSample.objects.filter(node_id__in=node_ids).count()
              + WorkerSample.objects.filter(node_id__in=node_ids).count())
    assert stored == samples, (stored, samples)
    Node.objects.filter(id__in=node_ids).delete()
    samples_per_s = samples / elapsed
    gpu_share = GPUS_PER_NODE / (GPUS_PER_NODE + WORKERS_PER_NODE)
    return {
        "samples_per_s": round(samples_per_s),
        "requests_per_s": round(requests / elapsed, 1),
        "samples": samples,
        "samples_per_batch": per_batch,
        # GPU readings a second, times the reporting interval: GPUs one process keeps up with.
        "gpus_at_10s_interval": round(samples_per_s * gpu_share * INTERVAL_S),
        "ingest_s": round(elapsed, 3),
    }


def build_rollup_fleet(count: int) -> list:
    from controlplane.fleet.models import GpuTier, Node, Worker
    from controlplane.traffic.models import Service

    Node.objects.filter(name__startswith="bench-rollup-").delete()
    tiers = list(GpuTier.objects.order_by("name")[:8])
    service, _ = Service.objects.get_or_create(
        name="bench-telemetry", defaults={"model_name": "llama-3.1-8b", "ttft_slo_s": 1.0, "tpot_slo_s": 0.1}
    )
    created = ROLLUP_HOUR - timedelta(days=1)
    nodes = Node.objects.bulk_create(
        Node(name=f"bench-rollup-{index:04d}", tier=tiers[index % len(tiers)], gpu_count=GPUS_PER_NODE,
             status="ready", created_at=created)
        for index in range(count)
    )
    Worker.objects.bulk_create(
        Worker(node=node, name=f"{role}-0", role=role, gpu_ids=gpus, service=service, status="ready")
        for node in nodes for role, gpus in (("prefill", [0, 1]), ("decode", [2, 3, 4, 5]))
    )
    return nodes


def bench_minute_rollup(nodes: list, records_per_s: int) -> dict:
    from controlplane.common.bulk import insert_ignoring_conflicts
    from controlplane.telemetry.ingest import NODE_COLUMNS, WORKER_COLUMNS
    from controlplane.telemetry.models import NodeSample, WorkerSample
    from controlplane.telemetry.services import rollups_recompute
    from controlplane.traffic.ingest import COLUMNS as RECORD_COLUMNS
    from controlplane.traffic.models import RequestRecord, Service

    service = Service.objects.get(name="bench-telemetry")
    minute = ROLLUP_HOUR + timedelta(hours=2, minutes=30)  # not in the hour the hour bench fills
    # The minute and the gap cap after it, as the roll-up reads them.
    moments = [minute + timedelta(seconds=s) for s in range(0, 80, INTERVAL_S)]
    node_rows = [
        (node.id, ts, gpu, 0.6, 420.0, 0, 0, None) for node in nodes for ts in moments for gpu in range(GPUS_PER_NODE)
    ]
    worker_rows = [
        (node.id, f"{role}-0", service.id, role, ts, 10, 1, 0.5, 5000.0, 1000.0, None, None, None, None)
        for node in nodes for ts in moments for role in ("prefill", "decode")
    ]
    insert_ignoring_conflicts(NodeSample, NODE_COLUMNS, node_rows)
    insert_ignoring_conflicts(WorkerSample, WORKER_COLUMNS, worker_rows)
    # In RECORD_COLUMNS order: a 1,000-token prompt, 200 tokens out, within the SLOs.
    record_rows = [
        (uuid.uuid4(), service.id, minute + timedelta(seconds=index / records_per_s), 1000, 200, 0, None, "", "", 0.3,
         0.04, None, "", "", "", "ok", "bench", minute)
        for index in range(records_per_s * 60)
    ]
    assert len(record_rows[0]) == len(RECORD_COLUMNS)
    insert_ignoring_conflicts(RequestRecord, RECORD_COLUMNS, record_rows)
    began = time.perf_counter()
    rollups_recompute(resolution_s=60, buckets=[minute])
    elapsed = time.perf_counter() - began
    RequestRecord.objects.filter(service=service, arrival_at__gte=ROLLUP_HOUR - timedelta(days=1)).delete()
    return {"minute_rollup_s": round(elapsed, 3), "minute_gpu_readings": len(node_rows) * 6 // 8,
            "minute_records": len(record_rows)}


def bench_hour_rollup(nodes: list) -> dict:
    from controlplane.common.bulk import insert_ignoring_conflicts
    from controlplane.telemetry.models import NodeRollup, TierRollup
    from controlplane.telemetry.services import rollups_recompute

    minutes = [ROLLUP_HOUR + timedelta(minutes=m) for m in range(60)]
    columns = ("node_id", "resolution_s", "bucket_start", "gpus", "gpu_util_mean", "power_w_mean", "energy_j",
               "cost_usd", "samples")
    node_rows = [
        (node.id, 60, moment, 8.0, 0.6, 420.0, 8 * 420.0 * 60, 8 * 3.0 / 60, 48) for node in nodes for moment in minutes
    ]
    insert_ignoring_conflicts(NodeRollup, columns, node_rows)
    pools = {(node.tier_id, role) for node in nodes for role in ("prefill", "decode", "idle")}
    TierRollup.objects.bulk_create(
        TierRollup(tier_id=tier_id, role=role, resolution_s=60, bucket_start=moment, gpus=100.0, gpu_util_mean=0.6,
                   power_w_mean=420.0, energy_j=100 * 420.0 * 60, cost_usd=5.0, samples=600)
        for tier_id, role in pools for moment in minutes
    )
    began = time.perf_counter()
    rollups_recompute(resolution_s=3600, buckets=[ROLLUP_HOUR])
    elapsed = time.perf_counter() - began
    return {"hour_rollup_s": round(elapsed, 3), "hour_node_minute_rows": len(node_rows)}


def clean_rollups() -> None:
    from controlplane.fleet.models import Node
    from controlplane.telemetry.models import ServiceRollup, TierRollup

    Node.objects.filter(name__startswith="bench-rollup-").delete()
    for model in (TierRollup, ServiceRollup):
        model.objects.filter(bucket_start__gte=ROLLUP_HOUR - timedelta(days=1),
                             bucket_start__lt=ROLLUP_HOUR + timedelta(days=1)).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200, help="agents sending samples")
    parser.add_argument("--intervals", type=int, default=3, help="reporting intervals per batch")
    parser.add_argument("--rounds", type=int, default=10, help="batches each agent sends")
    parser.add_argument("--rollup-nodes", type=int, default=1250, help="fleet size for the roll-up figures (0: skip)")
    parser.add_argument("--records-per-s", type=int, default=2000, help="request records a second in the rolled-up minute")
    add_json_flag(parser)
    args = parser.parse_args()
    # Measure what production runs: DEBUG off (DEBUG on records and formats every query).
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 32)
    setup_postgres_django()

    from controlplane.traffic.models import Service

    Service.objects.get_or_create(
        name="bench-telemetry", defaults={"model_name": "llama-3.1-8b", "ttft_slo_s": 1.0, "tpot_slo_s": 0.1}
    )
    metrics = bench_ingest(nodes=args.nodes, intervals=args.intervals, rounds=args.rounds)
    # The agent's steady state: one batch every reporting interval (8 GPU readings, 2 worker samples).
    single = bench_ingest(nodes=args.nodes, intervals=1, rounds=args.rounds)
    metrics["samples_per_s_one_interval_batches"] = single["samples_per_s"]
    metrics["requests_per_s_one_interval_batches"] = single["requests_per_s"]
    metrics["gpus_at_10s_interval_one_interval_batches"] = single["gpus_at_10s_interval"]
    if args.rollup_nodes:
        clean_rollups()
        try:
            nodes = build_rollup_fleet(args.rollup_nodes)
            metrics.update(bench_minute_rollup(nodes, args.records_per_s))
            metrics.update(bench_hour_rollup(nodes))
        finally:
            clean_rollups()
        metrics["rollup_nodes"] = args.rollup_nodes
    emit(
        NAME,
        metrics,
        [
            {"path": f"POST /api/v1/telemetry/samples, {args.intervals}-interval batches",
             "seconds": metrics["ingest_s"], "per_s": metrics["samples_per_s"], "unit": "samples"},
            {"path": "POST /api/v1/telemetry/samples, 1-interval batches", "seconds": single["ingest_s"],
             "per_s": single["samples_per_s"], "unit": "samples"},
            *([
                {"path": f"minute roll-up, {args.rollup_nodes} nodes", "seconds": metrics["minute_rollup_s"],
                 "per_s": None, "unit": "one minute bucket"},
                {"path": f"hour roll-up, {args.rollup_nodes} nodes", "seconds": metrics["hour_rollup_s"],
                 "per_s": None, "unit": "one hour bucket"},
            ] if args.rollup_nodes else []),
        ],
        as_json=args.json,
        results_dir=args.results_dir,
    )


if __name__ == "__main__":
    main()
