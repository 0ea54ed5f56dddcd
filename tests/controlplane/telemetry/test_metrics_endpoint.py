"""/metrics: the fleet's gauges in Prometheus text, read at scrape time, for viewers (or anyone, when allowed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from prometheus_client.parser import text_string_to_metric_families

from controlplane.fleet.models import GpuTier, Worker
from controlplane.telemetry.models import NodeSample, ServiceRollup, WorkerSample
from tests.factories import NodeFactory, ServiceFactory, UserFactory, tier

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 3, 1, 12, 0, 30, tzinfo=UTC)
GAUGES = {
    "cleave_cost_usd_per_hour", "cleave_power_watts", "cleave_gpu_utilization", "cleave_slo_attainment",
    "cleave_nodes", "cleave_tokens_per_second",
}


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def fleet(db):
    GpuTier.objects.filter(name="H100-SXM-80GB").update(price_usd_per_gpu_h=Decimal("3.00"))
    chat = ServiceFactory(name="chat")
    node = NodeFactory(name="h0", tier=tier("H100-SXM-80GB"), gpu_count=4, status="ready")
    NodeFactory(name="h1", tier=tier("H100-SXM-80GB"), gpu_count=4, status="unreachable")
    Worker.objects.create(node=node, name="decode-0", role="decode", gpu_ids=[0, 1], service=chat, status="ready")
    for seconds_ago, util in ((15, 0.1), (5, 0.9)):
        NodeSample.objects.bulk_create(
            NodeSample(node=node, gpu_index=gpu, ts=NOW - timedelta(seconds=seconds_ago), utilization=util,
                       power_w=600.0 if gpu < 2 else 80.0)
            for gpu in range(4)
        )
    WorkerSample.objects.create(node=node, worker_name="decode-0", service=chat, role="decode",
                                ts=NOW - timedelta(seconds=5), prompt_tokens_per_s=0.0, generation_tokens_per_s=900.0)
    ServiceRollup.objects.create(service=chat, resolution_s=60, bucket_start=datetime(2027, 3, 1, 11, 30, tzinfo=UTC),
                                 requests=10, requests_timed=8, requests_slo_met=6)
    return chat


def scrape(client) -> dict[str, dict[tuple, float]]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        family.name: {tuple(sorted(sample.labels.items())): sample.value for sample in family.samples}
        for family in text_string_to_metric_families(response.content.decode())
    }


def test_the_exposition_parses_and_carries_every_gauge(api_as, charlie, fleet):
    families = scrape(api_as(charlie))
    assert set(families) == GAUGES
    assert families["cleave_cost_usd_per_hour"] == {
        (("service", "chat"), ("tier", "H100-SXM-80GB")): pytest.approx(6.0),
        (("service", ""), ("tier", "H100-SXM-80GB")): pytest.approx(18.0),  # idle GPUs, both nodes
    }
    assert families["cleave_power_watts"] == {(("tier", "H100-SXM-80GB"),): pytest.approx(2 * 600 + 2 * 80)}
    assert families["cleave_gpu_utilization"] == {
        (("role", "decode"), ("tier", "H100-SXM-80GB")): pytest.approx(0.9),
        (("role", "idle"), ("tier", "H100-SXM-80GB")): pytest.approx(0.9),
    }
    assert families["cleave_slo_attainment"] == {(("service", "chat"),): pytest.approx(0.75)}
    assert families["cleave_nodes"][(("status", "ready"),)] == 1
    assert families["cleave_nodes"][(("status", "unreachable"),)] == 1
    assert families["cleave_nodes"][(("status", "draining"),)] == 0
    assert families["cleave_tokens_per_second"] == {(("service", "chat"),): 900.0}


def test_stale_readings_are_not_power_now(api_as, charlie, fleet):
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        families = scrape(api_as(charlie))
    assert families["cleave_power_watts"] == {(("tier", "H100-SXM-80GB"),): 0.0}
    assert families["cleave_tokens_per_second"] == {}


def test_anonymous_scrapes_are_refused_by_default(api_as, fleet):
    assert api_as(None).get("/metrics").status_code == 401


def test_machine_identities_cannot_scrape(api_as, fleet):
    assert api_as(UserFactory(username="agent-x", role="agent")).get("/metrics").status_code == 403


def test_anonymous_scrapes_are_allowed_when_the_setting_says_so(api_as, settings, fleet):
    settings.METRICS_ALLOW_ANONYMOUS = True
    assert set(scrape(api_as(None))) == GAUGES


def test_a_scraper_asking_for_text_plain_only_gets_it(api_as, charlie, fleet):
    response = api_as(charlie).get("/metrics", HTTP_ACCEPT="text/plain")
    assert response.status_code == 200
    assert b"cleave_nodes" in response.content


def test_a_scrape_costs_the_same_queries_for_a_bigger_fleet(api_as, charlie, fleet, django_assert_max_num_queries):
    client = api_as(charlie)
    client.get("/metrics")
    with django_assert_max_num_queries(10) as small:
        client.get("/metrics")
    NodeFactory.create_batch(25, gpu_count=8)
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get("/metrics")
