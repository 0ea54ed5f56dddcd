"""GET /api/v1/telemetry/summary: cost and power now, and a window's energy, utilization, tokens and SLOs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from controlplane.fleet.models import GpuTier, Worker
from controlplane.telemetry.models import NodeSample, ServiceRollup, TierRollup
from tests.factories import NodeFactory, PlanFactory, ServiceFactory, UserFactory, tier

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 3, 1, 12, 0, 30, tzinfo=UTC)
HOUR_START = datetime(2027, 3, 1, 11, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def chat(db):
    GpuTier.objects.filter(name="H100-SXM-80GB").update(price_usd_per_gpu_h=Decimal("3.00"))
    GpuTier.objects.filter(name="A100-SXM-80GB").update(price_usd_per_gpu_h=Decimal("1.50"))
    return ServiceFactory(name="chat", ttft_slo_s=1.0, tpot_slo_s=0.1, attainment_target=0.9)


def build_fleet(chat, nodes: int, prefix: str = "h") -> None:
    """`nodes` H100 nodes of 8 GPUs, 6 of them held by chat's workers, each GPU read once a moment ago."""
    for index in range(nodes):
        node = NodeFactory(name=f"{prefix}{index:03d}", tier=tier("H100-SXM-80GB"), gpu_count=8)
        Worker.objects.create(node=node, name="prefill-0", role="prefill", gpu_ids=[0, 1], service=chat, status="ready")
        Worker.objects.create(node=node, name="decode-0", role="decode", gpu_ids=[2, 3, 4, 5], service=chat,
                              status="ready")
        NodeSample.objects.bulk_create(
            NodeSample(node=node, gpu_index=gpu, ts=NOW - timedelta(seconds=5), utilization=0.5, power_w=500.0)
            for gpu in range(8)
        )


def pool(role, minute, *, service=None, tier_name="H100-SXM-80GB", **values):
    defaults = {"gpus": 1.0, "gpu_util_mean": 0.5, "power_w_mean": 400.0, "energy_j": 0.0, "cost_usd": 0.0,
                "prompt_tokens": 0.0, "generation_tokens": 0.0, "samples": 6}
    return TierRollup(tier=tier(tier_name), role=role, service=service, resolution_s=60,
                      bucket_start=HOUR_START + timedelta(minutes=minute), **{**defaults, **values})


def test_anonymous_callers_are_refused_and_viewers_read(api_as, charlie, chat):
    assert api_as(None).get("/api/v1/telemetry/summary").status_code == 401
    response = api_as(charlie).get("/api/v1/telemetry/summary")
    assert response.status_code == 200, response.content
    assert response.json()["window"] == "1h"


def test_machine_identities_cannot_read_it(api_as, chat):
    router = UserFactory(username="router-1", role="router")
    assert api_as(router).get("/api/v1/telemetry/summary").status_code == 403


def test_an_unknown_window_or_service_is_named(api_as, charlie, chat):
    response = api_as(charlie).get("/api/v1/telemetry/summary?window=1y&service=nope")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"window", "service"}


def test_cost_and_power_now_count_every_gpu_held(api_as, charlie, chat):
    build_fleet(chat, nodes=2)
    body = api_as(charlie).get("/api/v1/telemetry/summary").json()
    assert body["cost_usd_per_h"] == pytest.approx(16 * 3.00)
    assert body["power_kw"] == pytest.approx(16 * 0.5)
    assert (body["gpus"], body["gpus_reporting"]) == (16, 16)
    served = api_as(charlie).get("/api/v1/telemetry/summary?service=chat").json()
    assert served["cost_usd_per_h"] == pytest.approx(12 * 3.00)
    assert served["power_kw"] == pytest.approx(12 * 0.5)


def test_dollars_per_million_tokens_and_tokens_per_joule_on_known_data(api_as, charlie, chat):
    TierRollup.objects.bulk_create([
        pool("decode", minute, service=chat, energy_j=36_000.0, cost_usd=0.05, generation_tokens=6000.0)
        for minute in range(60)
    ] + [pool("idle", minute, energy_j=3_600.0, cost_usd=0.05) for minute in range(60)])
    ServiceRollup.objects.create(service=chat, resolution_s=60, bucket_start=HOUR_START, requests=1000,
                                 requests_timed=1000, requests_slo_met=950, prompt_tokens=1_500_000,
                                 output_tokens=500_000)
    body = api_as(charlie).get("/api/v1/telemetry/summary?window=1h").json()
    assert body["cost_usd"] == pytest.approx(6.0)
    assert body["energy_kwh"] == pytest.approx(60 * 39_600 / 3.6e6)
    # Served tokens: prompt + output of the window's requests. $6 over 2 M tokens; 2 M tokens over 2.376 MJ.
    assert body["served_tokens"] == {"prompt": 1_500_000, "output": 500_000}
    assert body["usd_per_million_tokens"] == pytest.approx(3.0)
    assert body["tokens_per_joule"] == pytest.approx(2_000_000 / (60 * 39_600))
    # Tokens per second are the engines' rates: 6,000 generated tokens a minute.
    assert body["tokens_per_s"] == {"prompt": 0.0, "generation": pytest.approx(100.0)}
    assert body["attainment"] == [{"service": "chat", "attainment": 0.95, "requests_timed": 1000, "target": 0.9}]
    narrowed = api_as(charlie).get("/api/v1/telemetry/summary?window=1h&service=chat").json()
    assert narrowed["usd_per_million_tokens"] == pytest.approx(1.5)


def test_the_window_holds_closed_buckets_only(api_as, charlie, chat):
    TierRollup.objects.bulk_create([
        pool("idle", -1, cost_usd=100.0),  # before the window
        pool("idle", 0, cost_usd=1.0),
        pool("idle", 60, cost_usd=100.0),  # the minute still open
    ])
    body = api_as(charlie).get("/api/v1/telemetry/summary").json()
    assert body["cost_usd"] == pytest.approx(1.0)
    assert (body["window_start"], body["window_end"]) == ("2027-03-01T11:00:00Z", "2027-03-01T12:00:00Z")


def test_utilization_by_tier_and_role_weighs_readings(api_as, charlie, chat):
    TierRollup.objects.bulk_create([
        pool("prefill", 0, service=chat, gpu_util_mean=0.9, samples=12, gpus=2.0),
        pool("decode", 0, service=chat, gpu_util_mean=0.6, samples=24, gpus=4.0),
        pool("idle", 0, gpu_util_mean=0.0, samples=12, gpus=2.0),
        pool("decode", 0, service=chat, tier_name="A100-SXM-80GB", gpu_util_mean=0.3, samples=24, gpus=4.0),
    ])
    utilization = api_as(charlie).get("/api/v1/telemetry/summary").json()["utilization"]
    assert utilization["by_role"] == {
        "decode": pytest.approx((0.6 * 24 + 0.3 * 24) / 48), "idle": 0.0, "prefill": pytest.approx(0.9)
    }
    assert utilization["by_tier"] == {
        "A100-SXM-80GB": pytest.approx(0.3), "H100-SXM-80GB": pytest.approx((0.9 * 12 + 0.6 * 24) / 48)
    }
    decode = next(p for p in utilization["by_pool"] if p == {**p, "tier": "H100-SXM-80GB", "role": "decode"})
    assert decode["gpus"] == pytest.approx(4.0 / 60)  # one minute of four GPUs in an hour


def test_the_saving_compares_cost_now_with_the_colocated_baseline(api_as, charlie, chat):
    build_fleet(chat, nodes=1)
    body = api_as(charlie).get("/api/v1/telemetry/summary").json()
    assert body["saving_vs_colocated"] is None  # no active plan
    PlanFactory(service=chat, status="active",
                baselines={"colocated_best_single_tier": {"feasible": True, "cost_usd_per_h": 30.0}})
    saving = api_as(charlie).get("/api/v1/telemetry/summary").json()["saving_vs_colocated"]
    assert saving["baseline_usd_per_h"] == 30.0
    assert saving["cost_usd_per_h"] == pytest.approx(6 * 3.00)
    assert saving["saving_usd_per_h"] == pytest.approx(12.0)
    assert saving["saving_share"] == pytest.approx(0.4)


@pytest.mark.parametrize("baselines", [
    {},
    {"colocated_best_single_tier": {"power_kw": 3}},
    {"colocated_best_single_tier": {"feasible": False, "reason": "no tier fits"}},
    {"colocated": {"cost_usd_per_h": "a lot"}},
])
def test_a_plan_without_a_usable_colocated_baseline_has_no_saving(api_as, charlie, chat, baselines):
    PlanFactory(service=chat, status="active", baselines=baselines)
    assert api_as(charlie).get("/api/v1/telemetry/summary").json()["saving_vs_colocated"] is None


@pytest.mark.parametrize("window", ["1h", "1w"])
def test_its_query_count_does_not_grow_with_the_fleet(api_as, charlie, chat, django_assert_max_num_queries, window):
    client = api_as(charlie)
    client.get("/api/v1/telemetry/summary")  # the token's first use writes last_used_at
    build_fleet(chat, nodes=2)
    with django_assert_max_num_queries(12) as small:
        assert client.get(f"/api/v1/telemetry/summary?window={window}&service=chat").status_code == 200
    build_fleet(chat, nodes=30, prefix="more-")
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert client.get(f"/api/v1/telemetry/summary?window={window}&service=chat").status_code == 200
