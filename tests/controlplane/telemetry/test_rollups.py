"""Minute and hour roll-ups: they equal the raw aggregates, and computing them twice changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from controlplane.fleet.models import GpuTier, Worker
from controlplane.telemetry.accounting import integrate
from controlplane.telemetry.models import NodeRollup, NodeSample, ServiceRollup, TierRollup, WorkerSample
from controlplane.telemetry.services import rollups_recompute
from tests.factories import NodeFactory, ServiceFactory, tier

pytestmark = pytest.mark.django_db

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
MINUTES = [T0 + timedelta(minutes=m) for m in range(3)]


def power_at(node_index: int, gpu: int, second: int) -> float:
    return 100.0 + 10 * node_index + gpu + (second % 60)


@pytest.fixture
def fleet(db):
    GpuTier.objects.filter(name="H100-SXM-80GB").update(price_usd_per_gpu_h=Decimal("3.00"))
    chat = ServiceFactory(name="chat")
    nodes = [
        NodeFactory(name=f"n{i}", tier=tier("H100-SXM-80GB"), gpu_count=2, created_at=T0 - timedelta(days=1))
        for i in range(2)
    ]
    Worker.objects.create(node=nodes[0], name="decode-0", role="decode", gpu_ids=[0], service=chat, status="ready")
    samples = []
    for i, node in enumerate(nodes):
        for gpu in range(2):
            # Every 10 s for 3 minutes, with one reading lost (node 1, GPU 1, second 70).
            for second in range(0, 180, 10):
                if (i, gpu, second) == (1, 1, 70):
                    continue
                samples.append(NodeSample(node=node, gpu_index=gpu, ts=T0 + timedelta(seconds=second),
                                          utilization=0.5 + 0.1 * gpu, power_w=power_at(i, gpu, second)))
    NodeSample.objects.bulk_create(samples)
    WorkerSample.objects.bulk_create(
        WorkerSample(node=nodes[0], worker_name="decode-0", service=chat, role="decode",
                     ts=T0 + timedelta(seconds=second), prompt_tokens_per_s=50.0, generation_tokens_per_s=200.0)
        for second in range(0, 180, 10)
    )
    return nodes


def rows_of(model, resolution_s=60):
    fields = [f.attname for f in model._meta.concrete_fields if f.attname != "id"]
    return sorted(model.objects.filter(resolution_s=resolution_s).values_list(*fields))


def test_rolling_up_twice_gives_the_same_rows(fleet):
    rollups_recompute(resolution_s=60, buckets=MINUTES)
    first = [rows_of(model) for model in (NodeRollup, TierRollup, ServiceRollup)]
    rollups_recompute(resolution_s=60, buckets=MINUTES)
    assert [rows_of(model) for model in (NodeRollup, TierRollup, ServiceRollup)] == first
    assert NodeRollup.objects.count() == 2 * 3


def test_minute_energy_adds_up_to_the_integral_of_the_raw_readings(fleet):
    rollups_recompute(resolution_s=60, buckets=MINUTES)
    for node in fleet:
        expected = 0.0
        for gpu in range(2):
            readings = NodeSample.objects.filter(node=node, gpu_index=gpu).order_by("ts").values_list("ts", "power_w")
            expected += integrate([(ts.timestamp(), power) for ts, power in readings], interval_s=10.0)
        stored = sum(NodeRollup.objects.filter(node=node, resolution_s=60).values_list("energy_j", flat=True))
        assert stored == pytest.approx(expected)


def test_a_minute_holds_the_mean_of_its_raw_readings(fleet):
    rollups_recompute(resolution_s=60, buckets=MINUTES)
    rollup = NodeRollup.objects.get(node=fleet[1], resolution_s=60, bucket_start=MINUTES[1])
    raw = list(NodeSample.objects.filter(node=fleet[1], ts__gte=MINUTES[1], ts__lt=MINUTES[2]))
    assert rollup.samples == len(raw) == 11
    assert rollup.gpu_util_mean == pytest.approx(sum(s.utilization for s in raw) / len(raw))
    assert rollup.power_w_mean == pytest.approx(sum(s.power_w for s in raw) / len(raw))
    assert rollup.cost_usd == pytest.approx(2 * 3.00 / 60)


def test_pools_split_the_nodes_between_roles_and_add_up_to_them(fleet):
    rollups_recompute(resolution_s=60, buckets=MINUTES)
    pools = {(row.role, row.service_id): row for row in TierRollup.objects.filter(bucket_start=MINUTES[0])}
    assert set(pools) == {("decode", fleet[0].workers.get().service_id), ("idle", None)}
    assert pools[("idle", None)].gpus == pytest.approx(3)
    for field in ("energy_j", "cost_usd", "samples"):
        node_total = sum(NodeRollup.objects.filter(bucket_start=MINUTES[0]).values_list(field, flat=True))
        assert sum(getattr(pool, field) for pool in pools.values()) == pytest.approx(node_total)


def test_engine_token_rates_integrate_to_tokens_in_their_pool(fleet):
    rollups_recompute(resolution_s=60, buckets=MINUTES)
    decode = TierRollup.objects.get(bucket_start=MINUTES[0], role="decode")
    assert (decode.prompt_tokens, decode.generation_tokens) == (pytest.approx(50 * 60), pytest.approx(200 * 60))


def test_an_hour_is_the_sum_of_its_minutes(fleet):
    rollups_recompute(resolution_s=60, buckets=MINUTES)
    rollups_recompute(resolution_s=3600, buckets=[T0])
    rollups_recompute(resolution_s=3600, buckets=[T0])
    hour = NodeRollup.objects.get(node=fleet[0], resolution_s=3600)
    minutes = NodeRollup.objects.filter(node=fleet[0], resolution_s=60)
    assert hour.energy_j == pytest.approx(sum(m.energy_j for m in minutes))
    assert hour.cost_usd == pytest.approx(sum(m.cost_usd for m in minutes))
    assert hour.samples == sum(m.samples for m in minutes)
    assert hour.gpus == pytest.approx(2 * 3 / 60)  # three minutes of two GPUs in the hour
    assert hour.gpu_util_mean == pytest.approx(sum(m.gpu_util_mean * m.samples for m in minutes) / hour.samples)
    assert TierRollup.objects.filter(resolution_s=3600).count() == 2


def test_a_node_registered_mid_minute_costs_its_share(fleet):
    late = NodeFactory(name="late", tier=tier("H100-SXM-80GB"), gpu_count=4, created_at=T0 + timedelta(seconds=45))
    rollups_recompute(resolution_s=60, buckets=MINUTES[:1])
    rollup = NodeRollup.objects.get(node=late)
    assert rollup.gpus == pytest.approx(4 * 15 / 60)
    assert rollup.cost_usd == pytest.approx(4 * 3.00 * 15 / 3600)


def test_utilization_per_pool_is_the_mean_of_the_readings_of_the_gpus_in_it(fleet):
    rollups_recompute(resolution_s=60, buckets=MINUTES[:1])
    pools = {row.role: row for row in TierRollup.objects.filter(bucket_start=MINUTES[0])}
    # The decode worker holds node 0's GPU 0 (readings at 0.5); idle are its GPU 1 and node 1's two GPUs.
    assert pools["decode"].gpu_util_mean == pytest.approx(0.5)
    assert pools["idle"].gpu_util_mean == pytest.approx((0.6 * 6 + 0.5 * 6 + 0.6 * 6) / 18)
