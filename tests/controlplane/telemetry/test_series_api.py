"""GET /api/v1/telemetry/series: one metric per roll-up bucket, ready for a plotly trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from controlplane.telemetry.models import TierRollup
from tests.factories import NodeFactory, ServiceFactory, tier

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 3, 1, 12, 0, 30, tzinfo=UTC)
HOUR_START = datetime(2027, 3, 1, 11, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def rollups(db):
    chat = ServiceFactory(name="chat")
    rows = []
    for minute in (0, 1, 59):
        start = HOUR_START + timedelta(minutes=minute)
        common = {"resolution_s": 60, "bucket_start": start, "samples": 6}
        rows += [
            TierRollup(tier=tier("H100-SXM-80GB"), role="decode", service=chat, gpus=4, gpu_util_mean=0.8,
                       energy_j=4 * 600 * 60.0, cost_usd=4 * 3.0 / 60, prompt_tokens=0, generation_tokens=6000,
                       **common),
            TierRollup(tier=tier("H100-SXM-80GB"), role="idle", gpus=4, gpu_util_mean=0.0, energy_j=4 * 100 * 60.0,
                       cost_usd=4 * 3.0 / 60, **common),
            TierRollup(tier=tier("A100-SXM-80GB"), role="prefill", service=chat, gpus=2, gpu_util_mean=0.5,
                       energy_j=2 * 300 * 60.0, cost_usd=2 * 1.5 / 60, prompt_tokens=12000, **common),
        ]
    TierRollup.objects.bulk_create(rows)
    return chat


def series(client, query):
    response = client.get(f"/api/v1/telemetry/series?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_anonymous_callers_are_refused_and_viewers_read(api_as, charlie, rollups):
    assert api_as(None).get("/api/v1/telemetry/series?metric=power_kw").status_code == 401
    assert api_as(charlie).get("/api/v1/telemetry/series?metric=power_kw").status_code == 200


def test_every_bucket_of_the_window_is_a_point_and_missing_ones_are_null(api_as, charlie, rollups):
    body = series(api_as(charlie), "metric=cost_usd_per_h&window=1h")
    assert (body["unit"], body["resolution_s"], len(body["x"]), len(body["y"])) == ("USD/h", 60, 60, 60)
    assert body["x"][0] == "2027-03-01T11:00:00Z"
    assert body["y"][0] == pytest.approx(4 * 3.0 + 4 * 3.0 + 2 * 1.5)
    assert body["y"][2] is None
    assert body["y"][59] == pytest.approx(27.0)


def test_power_utilization_and_tokens_per_bucket(api_as, charlie, rollups):
    client = api_as(charlie)
    assert series(client, "metric=power_kw")["y"][0] == pytest.approx((2400 + 400 + 600) / 1000)
    assert series(client, "metric=gpu_util")["y"][0] == pytest.approx((0.8 + 0.0 + 0.5) / 3)
    assert series(client, "metric=tokens_per_s")["y"][0] == pytest.approx((6000 + 12000) / 60)


def test_it_narrows_to_a_tier_a_role_or_a_service(api_as, charlie, rollups):
    client = api_as(charlie)
    assert series(client, "metric=power_kw&tier=A100-SXM-80GB")["y"][1] == pytest.approx(0.6)
    assert series(client, "metric=gpu_util&role=idle")["y"][1] == 0.0
    assert series(client, "metric=cost_usd_per_h&service=chat&tier=H100-SXM-80GB")["y"][1] == pytest.approx(12.0)


def test_a_week_reads_hour_buckets(api_as, charlie, rollups):
    body = series(api_as(charlie), "metric=power_kw&window=1w")
    assert (body["resolution_s"], len(body["x"])) == (3600, 168)
    assert body["x"][-1] == "2027-03-01T11:00:00Z"


def test_bad_parameters_are_named(api_as, charlie, rollups):
    response = api_as(charlie).get("/api/v1/telemetry/series?metric=joy&tier=TPU&role=chef")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"metric", "tier", "role"}


def test_its_query_count_does_not_grow_with_the_fleet(api_as, charlie, rollups, django_assert_max_num_queries):
    client = api_as(charlie)
    client.get("/api/v1/telemetry/series?metric=power_kw")
    with django_assert_max_num_queries(6) as small:
        series(client, "metric=power_kw&tier=H100-SXM-80GB&service=chat")
    NodeFactory.create_batch(40)
    with django_assert_max_num_queries(len(small.captured_queries)):
        series(client, "metric=power_kw&tier=H100-SXM-80GB&service=chat")
