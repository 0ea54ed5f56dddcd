"""Cost now: every GPU a node holds at its tier's price, idle ones too, summed by node, pool, service and plan."""

from __future__ import annotations

from decimal import Decimal

import pytest

from controlplane.fleet.models import GpuTier, Worker
from controlplane.telemetry.accounting import fleet_cost, fleet_snapshot
from tests.factories import NodeFactory, PlanFactory, ServiceFactory, tier

pytestmark = pytest.mark.django_db


@pytest.fixture
def prices(db):
    GpuTier.objects.filter(name="H100-SXM-80GB").update(price_usd_per_gpu_h=Decimal("3.00"))
    GpuTier.objects.filter(name="A100-SXM-80GB").update(price_usd_per_gpu_h=Decimal("1.50"))


@pytest.fixture
def fleet(prices):
    chat = ServiceFactory(name="chat")
    plan = PlanFactory(service=chat, status="active")
    h100 = NodeFactory(name="h100-a", tier=tier("H100-SXM-80GB"), gpu_count=8)
    a100 = NodeFactory(name="a100-a", tier=tier("A100-SXM-80GB"), gpu_count=4)
    Worker.objects.create(node=h100, name="prefill-0", role="prefill", gpu_ids=[0, 1], service=chat, plan=plan,
                          status="ready")
    Worker.objects.create(node=h100, name="decode-0", role="decode", gpu_ids=[2, 3, 4, 5], service=chat, plan=plan,
                          status="ready")
    Worker.objects.create(node=a100, name="decode-1", role="decode", gpu_ids=[0, 1], service=chat, status="starting")
    # A stopped worker holds nothing: its GPUs are idle.
    Worker.objects.create(node=a100, name="old", role="prefill", gpu_ids=[2, 3], service=chat, status="stopped")
    return {"chat": chat, "plan": plan}


def cost():
    snapshot = fleet_snapshot()
    return fleet_cost(snapshot.nodes, snapshot.owners)


def test_a_node_costs_all_its_gpus_idle_ones_included(fleet):
    result = cost()
    assert result.by_node == {"h100-a": pytest.approx(8 * 3.00), "a100-a": pytest.approx(4 * 1.50)}
    assert result.total_usd_per_h == pytest.approx(8 * 3.00 + 4 * 1.50)
    assert result.gpus == 12


def test_pools_are_tier_by_role_and_idle_gpus_are_a_pool(fleet):
    result = cost()
    assert result.by_pool == {
        ("H100-SXM-80GB", "prefill"): pytest.approx(2 * 3.00),
        ("H100-SXM-80GB", "decode"): pytest.approx(4 * 3.00),
        ("H100-SXM-80GB", "idle"): pytest.approx(2 * 3.00),
        ("A100-SXM-80GB", "decode"): pytest.approx(2 * 1.50),
        ("A100-SXM-80GB", "idle"): pytest.approx(2 * 1.50),
    }


def test_a_service_and_a_plan_cost_the_gpus_their_workers_hold(fleet):
    result = cost()
    assert result.by_service == {"chat": pytest.approx(6 * 3.00 + 2 * 1.50)}
    assert result.by_plan == {fleet["plan"].pk: pytest.approx(6 * 3.00)}
    assert result.by_service_tier[("", "H100-SXM-80GB")] == pytest.approx(2 * 3.00)


def test_a_gpu_claimed_twice_is_counted_once(fleet):
    node = fleet["plan"].workers.first().node
    Worker.objects.create(node=node, name="zz-new", role="decode", gpu_ids=[0, 6], status="starting")
    result = cost()
    assert result.total_usd_per_h == pytest.approx(8 * 3.00 + 4 * 1.50)
    assert result.by_pool[("H100-SXM-80GB", "decode")] == pytest.approx(5 * 3.00)
