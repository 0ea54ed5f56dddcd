"""Console pages at fleet scale: every page's time at p95, logged in, on PostgreSQL.

    python bench/console_pages.py [--json] [--iterations N] [--nodes N] [--days D]

Seeds a database of its own (BENCH_DATABASE_URL, default the local server's `cleave_bench_console`) with
a fleet of 1,250 nodes (10,000 GPUs over the 8 catalog tiers, 2,500 workers of 10 services) and 30 days
of what it leaves behind: hour roll-ups of every node and pool for 30 days, minute roll-ups of the pools
and services for the 8 days they are kept and of the nodes for the last day, the last minute's raw GPU
and worker samples (an hour of them for a few nodes), 30 days of 5-minute workload profiles, request
records, plans with placements over 125 nodes, rollouts, assignments, scheduled replan decisions, 1,250
node identities and their tokens, classifier versions and 200,000 audit events. Everything goes in with COPY, so seeding takes
seconds.

Then it requests every page through Django's test client (the whole middleware stack, a logged-in
admin), N times each after a warm-up, and reports each page's p95; `p95_ms` is the largest of them and
`slowest_page` names its page. The target is every page under 500 ms at p95. A page's queries are a
fixed number whatever the fleet (tests/controlplane/console/test_query_counts.py), so its time grows
with the rows the database sums for it: the overview over a day sums the pools' minute roll-ups
(88 pools x 1,440 minutes), over a week their hour roll-ups; the fleet page reads one page of nodes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import add_json_flag, emit

NAME = "console_pages"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/cleave_bench_console"
GPUS_PER_NODE = 8
SERVICES = 10
PLACED_NODES = 125
DETAILED_NODES = 10  # nodes with an hour of raw samples, as the node page reads them
AUDIT_EVENTS = 200_000
RECORDS_PER_SERVICE = 5_000
MINUTE_DAYS_POOLS = 8
MINUTE_DAYS_NODES = 1
SAMPLE_S = 10


def _copy(cursor: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    count = 0
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


@contextlib.contextmanager
def _indexes_rebuilt(cursor: Any, tables: Sequence[str]) -> Iterator[None]:
    """Drop the tables' secondary indexes and unique constraints, and build them again afterwards: building an
    index over millions of rows once is several times faster than growing it row by row. (The bench
    database's superuser may; production never needs to.)"""
    cursor.execute("""
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
        WHERE c.conrelid = ANY(%s::regclass[]) AND c.contype = 'u'
    """, [list(tables)])
    constraints = cursor.fetchall()
    cursor.execute("""
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
    """, [list(tables)])
    indexes = cursor.fetchall()
    for table, name, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    # Nor check each row's foreign keys one by one: the rows are made from the rows they point to.
    cursor.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        cursor.execute("SET session_replication_role = DEFAULT")
        for table, name, definition in constraints:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            cursor.execute(definition)


def _json(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)


def _placement(nodes: Sequence[tuple[int, str, str]], service: str) -> list[dict[str, Any]]:
    return [
        {"node": name, "workers": [
            {"name": f"{service}-{role}-0", "role": role, "engine": "vllm", "model": "llama-3.1-8b", "tp": 4,
             "gpu_ids": gpus, "port": port, "tier": tier, "dtype": "bf16", "service": service, "engine_args": {}}
            for role, gpus, port in (("prefill", [0, 1, 2, 3], 8100), ("decode", [4, 5, 6, 7], 8101))
        ]}
        for _, name, tier in nodes
    ]


def _prediction(cost: float, mode: str = "disaggregated") -> dict[str, Any]:
    return {"mode": mode, "cost_usd_per_h": cost, "power_kw": cost / 6, "gpus": int(cost / 2), "rate_rps": 300.0,
            "goodput_rps": 290.0, "slo_attainment": 0.95, "meets_slo": True, "usd_per_million_tokens": 0.4,
            "tokens_per_joule": 3.0, "simulated": True, "chunk_tokens": 512}


def seed(*, nodes_count: int, days: int, now: datetime) -> dict[str, int]:
    """Empty the bench database's rows (the catalog tiers stay) and COPY a fleet and its history in."""
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from controlplane.fleet.models import GpuTier

    rng = random.Random(7)
    tiers = list(GpuTier.objects.order_by("name").values_list("id", "name", "price_usd_per_gpu_h"))
    minute = now.replace(second=0, microsecond=0)
    hour = now.replace(minute=0, second=0, microsecond=0)
    counts: dict[str, int] = {}
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor  # psycopg's own, for COPY
        cursor.execute(
            "TRUNCATE accounts_auditevent, accounts_apitoken, accounts_user, fleet_node, traffic_service, "
            "planning_plan, traffic_classifiermodel, telemetry_tierrollup RESTART IDENTITY CASCADE"
        )
        password = make_password("bench-password-not-secret")
        counts["users"] = _copy(cursor, "accounts_user", (
            "username", "password", "role", "is_active", "is_staff", "is_superuser", "first_name", "last_name",
            "email", "date_joined"), [
            ("bench-admin", password, "admin", True, False, False, "", "", "", now),
            *((f"node:n{index:04d}", "!", "agent", True, False, False, "", "", "", now) for index in range(nodes_count)),
        ])
        counts["nodes"] = _copy(cursor, "fleet_node", (
            "name", "tier_id", "gpu_count", "agent_url", "status", "labels", "generation_desired",
            "generation_applied", "last_heartbeat_at", "agent_version", "created_at"), (
            (f"n{index:04d}", tiers[index % len(tiers)][0], GPUS_PER_NODE, f"http://10.0.{index // 250}.{index % 250}:9100",
             "unreachable" if index % 97 == 0 else ("draining" if index % 61 == 0 else "ready"), _json({}), 4, 4,
             now - timedelta(seconds=rng.uniform(0, 5)), "0.1.0", now - timedelta(days=days + 1))
            for index in range(nodes_count)
        ))
        cursor.execute("SELECT id, name, tier_id FROM fleet_node ORDER BY name")
        tier_names = {tier_id: name for tier_id, name, _ in tiers}
        fetched = cursor.fetchall()
        nodes = [(node_id, name, tier_names[tier_id]) for node_id, name, tier_id in fetched]
        node_tier = {node_id: tier_id for node_id, _, tier_id in fetched}
        cursor.execute("SELECT id, username FROM accounts_user")
        users = {name: user_id for user_id, name in cursor.fetchall()}
        counts["tokens"] = _copy(cursor, "accounts_apitoken", (
            "user_id", "name", "scope", "node_id", "prefix", "digest", "created_at", "expires_at"), (
            (users[f"node:{name}"], f"node {name}", "node", node_id, f"nt{node_id:08d}", uuid.uuid4().hex * 2,
             now, now + timedelta(days=365))
            for node_id, name, _ in nodes
        ))

        counts["services"] = _copy(cursor, "traffic_service", (
            "name", "model_name", "dtype", "ttft_slo_s", "tpot_slo_s", "slo_percentile", "attainment_target",
            "rebalance_interval_s", "rebalance_min_saving", "auto_approve", "min_instances_per_phase", "created_at"), (
            (f"svc-{index:02d}", "llama-3.1-8b", "bf16", 1.0, 0.1, 0.9, 0.9, 900, 0.1, index % 3 == 0, 1, now)
            for index in range(SERVICES)
        ))
        cursor.execute("SELECT id, name FROM traffic_service ORDER BY name")
        services = cursor.fetchall()

        plan_rows = []
        for index, (service_id, service) in enumerate(services):
            placed = [nodes[(index + SERVICES * k) % len(nodes)] for k in range(PLACED_NODES)]
            placement = _json(_placement(placed, service))
            baselines = _json({"colocated_best_single_tier": {**_prediction(900.0, "colocated"), "feasible": True},
                               "disaggregated_single_tier": {**_prediction(850.0), "feasible": True},
                               "colocated": {"cost_usd_per_h": 900.0}})
            for status, cost, age_h in [("active", 800.0, 48.0), ("draft", 760.0, 0.5),
                                        *(("superseded", 820.0 + k, 72.0 + k) for k in range(20))]:
                plan_rows.append((service_id, status, "cost", _json({"source": "profile"}),
                                  _json([{"tier": "H100-SXM-80GB", "tp": 4, "role": "prefill", "count": PLACED_NODES}]),
                                  placement, _json({"pools": {}}), _json(_prediction(cost)), baselines, cost, cost / 6,
                                  "scheduled replan: saves 5%" if status == "draft" else "",
                                  now - timedelta(hours=age_h), now - timedelta(hours=age_h - 1) if status == "active" else None))
        counts["plans"] = _copy(cursor, "planning_plan", (
            "service_id", "status", "objective", "inputs", "instances", "placement", "routing", "predictions",
            "baselines", "predicted_cost_usd_per_h", "predicted_power_kw", "reason", "created_at", "activated_at"),
            plan_rows)
        cursor.execute("SELECT id, service_id, status FROM planning_plan ORDER BY id")
        plans = cursor.fetchall()
        active = {service_id: plan_id for plan_id, service_id, status in plans if status == "active"}
        drafts = [plan_id for plan_id, _, status in plans if status == "draft"]
        counts["rollouts"] = _copy(cursor, "planning_rollout", (
            "service_id", "plan_id", "strategy", "status", "options", "reason", "created_at", "started_at",
            "finished_at"), (
            (service_id, plan_id, "rolling", "succeeded", _json({}), "", now - timedelta(hours=47),
             now - timedelta(hours=47), now - timedelta(hours=46))
            for service_id, plan_id in active.items()
        ))
        cursor.execute("SELECT id FROM planning_rollout ORDER BY id")
        rollouts = [row[0] for row in cursor.fetchall()]
        kinds = ["start", "wait_ready", "route", "drain", "stop", "activate"]
        counts["rollout_steps"] = _copy(cursor, "planning_rolloutstep", (
            "rollout_id", "index", "kind", "params", "status", "attempts", "claimed_by", "detail", "finished_at"), (
            (rollout_id, step, kind, _json({"nodes": [n for _, n, _ in nodes[:PLACED_NODES:25]]}), "done", 1, "",
             _json({"ready": ["x"] * 4}), now - timedelta(hours=46))
            for rollout_id in rollouts for step, kind in enumerate(kinds)
        ))

        counts["workers"] = _copy(cursor, "fleet_worker", (
            "node_id", "name", "service_id", "plan_id", "role", "engine", "model_name", "tp", "gpu_ids", "port",
            "status", "updated_at"), (
            (node_id, f"{role}-0", services[index % SERVICES][0], active[services[index % SERVICES][0]], role, "vllm",
             "llama-3.1-8b", 4, _json(gpus), port, "ready", now)
            for index, (node_id, _, _) in enumerate(nodes)
            for role, gpus, port in (("prefill", [0, 1, 2, 3], 8100), ("decode", [4, 5, 6, 7], 8101))
        ))
        counts["assignments"] = _copy(cursor, "fleet_assignment", (
            "node_id", "generation", "plan_id", "workers", "created_at", "pushed_at", "applied_at"), (
            (node_id, generation, active[services[index % SERVICES][0]], _json(_placement([(node_id, name, tier)],
                                                                                   "svc")[0]["workers"]),
             now - timedelta(days=5 - generation), now - timedelta(days=5 - generation),
             now - timedelta(days=5 - generation))
            for index, (node_id, name, tier) in enumerate(nodes) for generation in range(1, 5)
        ))

        # Raw samples: the last minute of every GPU and worker; an hour of them for a few nodes.
        def gpu_samples() -> Iterable[tuple[Any, ...]]:
            for position, (node_id, _, _) in enumerate(nodes):
                span = 3600 if position < DETAILED_NODES else 60
                for back in range(SAMPLE_S, span + 1, SAMPLE_S):
                    ts = now - timedelta(seconds=back)
                    for gpu in range(GPUS_PER_NODE):
                        util = rng.uniform(0.2, 0.95)
                        yield node_id, ts, gpu, util, 120 + 500 * util, 60 * 2**30, 80 * 2**30, 60.0

        counts["node_samples"] = _copy(cursor, "telemetry_nodesample", (
            "node_id", "ts", "gpu_index", "utilization", "power_w", "memory_used_bytes", "memory_total_bytes",
            "temperature_c"), gpu_samples())

        def worker_samples() -> Iterable[tuple[Any, ...]]:
            for position, (node_id, _, _) in enumerate(nodes):
                span = 3600 if position < DETAILED_NODES else 60
                service_id = services[position % SERVICES][0]
                for back in range(SAMPLE_S, span + 1, SAMPLE_S):
                    ts = now - timedelta(seconds=back)
                    for role in ("prefill", "decode"):
                        yield (node_id, f"{role}-0", service_id, role, ts, 8, 1, 0.5, 4000.0, 800.0, 0.2, 0.4,
                               0.02, 0.04)

        counts["worker_samples"] = _copy(cursor, "telemetry_workersample", (
            "node_id", "worker_name", "service_id", "role", "ts", "requests_running", "requests_waiting",
            "kv_cache_usage", "prompt_tokens_per_s", "generation_tokens_per_s", "ttft_p50_s", "ttft_p90_s",
            "itl_p50_s", "itl_p90_s"), worker_samples())

        # The roll-ups are most of the rows: the database generates them (INSERT ... SELECT over generate_series).
        pools: set[tuple[int, str, int | None]] = {(tier_id, "idle", None) for tier_id, _, _ in tiers}
        for index, (node_id, _, _) in enumerate(nodes):
            for role in ("prefill", "decode"):
                pools.add((node_tier[node_id], role, services[index % SERVICES][0]))
        cursor.execute("CREATE TEMP TABLE bench_pool (tier_id bigint, role text, service_id bigint, price float8)")
        prices = {tier_id: float(price) for tier_id, _, price in tiers}
        _copy(cursor, "bench_pool", ("tier_id", "role", "service_id", "price"),
              ((tier_id, role, service_id, prices[tier_id]) for tier_id, role, service_id in sorted(
                  pools, key=lambda pool: (pool[0], pool[1], pool[2] or 0))))
        gpus_per_pool = nodes_count * GPUS_PER_NODE / len(pools)
        spans = {"pools": {60: (minute, MINUTE_DAYS_POOLS * 1440), 3600: (hour, days * 24)},
                 "nodes": {60: (minute, MINUTE_DAYS_NODES * 1440), 3600: (hour, days * 24)}}
        counts["tier_rollups"] = counts["node_rollups"] = counts["service_rollups"] = 0
        rollup_tables = ("telemetry_tierrollup", "telemetry_noderollup", "telemetry_servicerollup")
        with _indexes_rebuilt(cursor, rollup_tables):
            for resolution_s, (end, buckets) in spans["pools"].items():
                first = end - timedelta(seconds=resolution_s * buckets)
                last = end - timedelta(seconds=resolution_s)
                step = f"{resolution_s} seconds"
                cursor.execute(f"""
                    INSERT INTO telemetry_tierrollup (tier_id, role, service_id, resolution_s, bucket_start, gpus,
                        gpu_util_mean, power_w_mean, energy_j, cost_usd, prompt_tokens, generation_tokens, samples)
                    SELECT p.tier_id, p.role, p.service_id, {resolution_s}, b, %(gpus)s, u.util, 100 + 500 * u.util,
                        (100 + 500 * u.util) * %(gpus)s * {resolution_s}, p.price * %(gpus)s * {resolution_s} / 3600.0,
                        CASE WHEN p.role = 'idle' THEN 0 ELSE 3000.0 * {resolution_s} END,
                        CASE WHEN p.role = 'idle' THEN 0 ELSE 700.0 * {resolution_s} END,
                        (%(gpus)s * {resolution_s} / {SAMPLE_S})::int
                    FROM bench_pool p CROSS JOIN generate_series(%(first)s::timestamptz, %(last)s, %(step)s::interval) b
                    CROSS JOIN LATERAL (SELECT CASE WHEN p.role = 'idle' THEN 0.1
                        ELSE 0.55 + 0.02 * ((extract(epoch FROM b)::bigint / {resolution_s} + p.tier_id) %% 5) END AS util) u
                """, {"gpus": gpus_per_pool, "first": first, "last": last, "step": step})
                counts["tier_rollups"] += cursor.rowcount
                cursor.execute(f"""
                    INSERT INTO telemetry_servicerollup (service_id, resolution_s, bucket_start, requests, requests_timed,
                        requests_slo_met, prompt_tokens, output_tokens)
                    SELECT s.id, {resolution_s}, b, 30 * {resolution_s}, 30 * {resolution_s}, 28 * {resolution_s},
                        900 * 30 * {resolution_s}, 220 * 30 * {resolution_s}
                    FROM traffic_service s CROSS JOIN generate_series(%(first)s::timestamptz, %(last)s, %(step)s::interval) b
                """, {"first": first, "last": last, "step": step})
                counts["service_rollups"] += cursor.rowcount
            for resolution_s, (end, buckets) in spans["nodes"].items():
                cursor.execute(f"""
                    INSERT INTO telemetry_noderollup (node_id, resolution_s, bucket_start, gpus, gpu_util_mean, power_w_mean,
                        energy_j, cost_usd, samples)
                    SELECT n.id, {resolution_s}, b, 8, 0.6, 400, 400 * 8 * {resolution_s},
                        t.price_usd_per_gpu_h * 8 * {resolution_s} / 3600.0, 8 * {resolution_s} / {SAMPLE_S}
                    FROM fleet_node n JOIN fleet_gputier t ON t.id = n.tier_id
                    CROSS JOIN generate_series(%(first)s::timestamptz, %(last)s, %(step)s::interval) b
                """, {"first": end - timedelta(seconds=resolution_s * buckets), "last": end - timedelta(seconds=resolution_s),
                      "step": f"{resolution_s} seconds"})
                counts["node_rollups"] += cursor.rowcount

        window = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)

        def profiles() -> Iterable[tuple[Any, ...]]:
            for service_id, _ in services:
                for step in range(1, days * 288 + 1):
                    start = window - timedelta(minutes=5 * step)
                    drift = step % 500 == 0
                    share = 0.45 + 0.2 * ((step // 48) % 3) / 2
                    yield (service_id, start, start + timedelta(minutes=5), 9000, 30.0 + 5 * ((step // 12) % 4), 1.1,
                           800.0, 2400.0, 6000.0, 200.0, 600.0, 1200.0, 0.3, share, 0.02, 7000.0 * share,
                           7000.0 * (1 - share), "prefill-heavy" if share > 0.6 else "balanced", 0.9, _json({}),
                           _json({"next_class": "balanced", "next_confidence": 0.8, "next_rate_rps": 31.0,
                                  "drift": {"changed": drift, "from": "balanced", "to": "prefill-heavy",
                                            "rate_change": 0.3, "reason": "the class moved" if drift else "steady"}}),
                           now)

        counts["profiles"] = _copy(cursor, "traffic_workloadprofile", (
            "service_id", "window_start", "window_end", "request_count", "arrival_rate_rps", "burstiness_cv",
            "prompt_tokens_p50", "prompt_tokens_p90", "prompt_tokens_p99", "output_tokens_p50", "output_tokens_p90",
            "output_tokens_p99", "prefix_cache_share", "prefill_share", "prefill_share_se", "prefill_gpu_s",
            "decode_gpu_s", "workload_class", "confidence", "class_mix", "forecast", "created_at"), profiles())
        counts["records"] = _copy(cursor, "traffic_requestrecord", (
            "id", "service_id", "arrival_at", "prompt_tokens", "output_tokens", "cached_prompt_tokens", "endpoint",
            "client", "ttft_s", "tpot_s", "e2e_s", "prefill_worker", "decode_worker", "predicted_class", "status",
            "source", "received_at"), (
            (uuid.uuid4(), service_id, now - timedelta(seconds=index * 0.02), int(rng.lognormvariate(6.5, 1.0)) + 1,
             int(rng.lognormvariate(5.0, 0.8)) + 1, 0, "chat", "", 0.3, 0.03, 3.0, "n0000/prefill-0", "n0001/decode-0",
             "balanced", "ok", "router", now)
            for service_id, _ in services for index in range(RECORDS_PER_SERVICE)
        ))
        counts["classifiers"] = _copy(cursor, "traffic_classifiermodel", (
            "kind", "version", "metrics", "trained_on", "features", "is_active", "created_at"), (
            (kind, f"{kind}-{index:04d}", _json(
                {"macro_f1": 0.7, "baseline_macro_f1": 0.55, "accuracy": 0.8, "brier": 0.2, "ece": 0.03,
                 "train_rows": 100000} if kind == "admission" else
                {"model": {"share_mae": 0.03, "windows": 2000}, "persistence": {"share_mae": 0.05, "windows": 2000}}),
             _json({}), _json([]), index == 30, now - timedelta(days=30 - index))
            for kind in ("admission", "workload") for index in range(1, 31)
        ))
        # A scheduled replan per service every 15 minutes for the whole span; one in twenty proposed a plan.
        counts["rebalance_decisions"] = _copy(cursor, "planning_rebalancedecision", (
            "service_id", "at", "proposed", "plan_id", "auto_approved", "reason"), (
            (service_id, now - timedelta(minutes=15 * step), step % 20 == 0,
             drafts[index % len(drafts)] if step % 20 == 0 else None, False,
             "saves 6% over the active plan" if step % 20 == 0 else "saving 2% is under the minimum of 10%")
            for index, (service_id, _) in enumerate(services) for step in range(days * 96)
        ))
        verbs = ["rebalance.propose", "rebalance.keep", "assignment.create", "plan.create", "node.ready",
                 "token.create", "service.update"]
        counts["audit_events"] = _copy(cursor, "accounts_auditevent", (
            "at", "actor_label", "verb", "object_type", "object_id", "object_repr", "before", "after"), (
            (now - timedelta(seconds=index * 13), "system:beat", verbs[index % len(verbs)], "traffic.service",
             str(services[index % SERVICES][0]), services[index % SERVICES][1], None,
             _json({"reason": "saves 6% over the active plan"}))
            for index in range(AUDIT_EVENTS)
        ))
        # Outside a transaction, as production tables are: vacuumed (visibility map set) and analyzed.
        cursor.execute("VACUUM ANALYZE")
    counts["drafts"] = len(drafts)
    return counts


def pages(*, drafts: Sequence[int]) -> dict[str, str]:
    from controlplane.fleet.models import Node
    from controlplane.planning.models import Plan

    node = Node.objects.order_by("name").values_list("name", flat=True).first()
    active = Plan.objects.filter(status="active").order_by("id").values_list("id", flat=True).first()
    return {
        "overview 1h": "/?window=1h", "overview 1d": "/?window=1d", "overview 1w": "/?window=1w",
        "overview live": "/overview/live?window=1d", "fleet": "/fleet/", "fleet (tier, page 3)":
        "/fleet/?tier=H100-SXM-80GB&page=3", "fleet live": "/fleet/live", "node": f"/fleet/nodes/{node}/?window=1d",
        "traffic 1d": "/traffic/?service=svc-00&span=1d", "traffic 1w": "/traffic/?service=svc-00&span=1w",
        "plans": "/plans/", "plan (draft)": f"/plans/{drafts[0]}/", "plan (active, rollout)": f"/plans/{active}/",
        "plan live": f"/plans/{active}/live", "what-if": "/what-if/", "rebalancing": "/rebalancing/",
        "models": "/models/", "audit": "/audit/", "audit (filtered, page 40)": "/audit/?verb=rebalance.&page=40",
        "rebalancing (page 50)": "/rebalancing/?decisions_page=50",
        "users and tokens": "/users/",
    }


def p95(samples_ms: Sequence[float]) -> float:
    ordered = sorted(samples_ms)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20, help="timed requests per page (after one warm-up)")
    parser.add_argument("--nodes", type=int, default=1250)
    parser.add_argument("--days", type=int, default=30)
    add_json_flag(parser)
    args = parser.parse_args()

    os.environ.setdefault("BENCH_DATABASE_URL", DEFAULT_URL)
    # Pages are timed as production serves them: DEBUG off (no query log, no debug pages).
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", "bench-console-pages-secret-key-not-for-production")
    from bench.django_env import setup_postgres_django

    setup_postgres_django()
    from django.test import Client

    from controlplane.accounts.models import User

    now = datetime.now(UTC)
    began = time.perf_counter()
    counts = seed(nodes_count=args.nodes, days=args.days, now=now)
    seed_s = time.perf_counter() - began
    from controlplane.planning.models import Plan

    drafts = list(Plan.objects.filter(status="draft").order_by("id").values_list("id", flat=True))
    client = Client()
    client.force_login(User.objects.get(username="bench-admin"))
    rows: list[dict[str, Any]] = []
    for name, url in pages(drafts=drafts).items():
        response = client.get(url)
        assert response.status_code == 200, (name, url, response.status_code)
        timings = []
        for _ in range(args.iterations):
            start = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, (name, url)
        rows.append({"page": name, "p50_ms": round(statistics.median(timings), 1), "p95_ms": round(p95(timings), 1),
                     "max_ms": round(max(timings), 1), "kb": round(len(response.content) / 1024, 1)})
    slowest = max(rows, key=lambda row: row["p95_ms"])
    emit(NAME, {
        "p95_ms": slowest["p95_ms"], "slowest_page": slowest["page"], "target_ms": 500,
        "pages": len(rows), "iterations": args.iterations, "nodes": args.nodes, "gpus": args.nodes * GPUS_PER_NODE,
        "days": args.days, "seed_s": round(seed_s, 1), "rows_seeded": sum(counts.values()),
        "tier_rollups": counts["tier_rollups"], "node_rollups": counts["node_rollups"],
        "per_page_p95_ms": {row["page"]: row["p95_ms"] for row in rows},
    }, table_rows=rows, as_json=args.json, results_dir=args.results_dir)


if __name__ == "__main__":
    main()
