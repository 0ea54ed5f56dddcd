"""SLO attainment: the share of a window's timed requests that met both the TTFT and the TPOT SLO."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from controlplane.telemetry.models import ServiceRollup
from controlplane.telemetry.services import rollups_recompute
from controlplane.traffic.models import RequestRecord
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

MINUTE = datetime(2027, 3, 1, 11, 30, tzinfo=UTC)


@pytest.fixture
def chat(db):
    service = ServiceFactory(name="chat", ttft_slo_s=1.0, tpot_slo_s=0.1)
    latencies = [
        (0.5, 0.05, "ok"),  # met
        (1.0, 0.1, "ok"),  # met: at the SLO counts
        (1.5, 0.05, "ok"),  # TTFT missed
        (0.5, 0.2, "ok"),  # TPOT missed
        (None, None, "error"),  # no latencies: ignored
        (0.5, None, "ok"),  # a one-token answer has no TPOT: ignored
    ]
    RequestRecord.objects.bulk_create(
        RequestRecord(id=uuid.uuid4(), service=service, arrival_at=MINUTE + timedelta(seconds=index), prompt_tokens=100,
                      output_tokens=10, ttft_s=ttft, tpot_s=tpot, status=status)
        for index, (ttft, tpot, status) in enumerate(latencies)
    )
    return service


def test_a_minute_counts_its_requests_those_timed_and_those_meeting_both_slos(chat):
    rollups_recompute(resolution_s=60, buckets=[MINUTE])
    rollup = ServiceRollup.objects.get(service=chat)
    assert (rollup.requests, rollup.requests_timed, rollup.requests_slo_met) == (6, 4, 2)
    # Tokens served count the requests that finished ok, each once.
    assert (rollup.prompt_tokens, rollup.output_tokens) == (500, 50)


def test_the_summary_reports_attainment_per_service(api_as, charlie, chat):
    ServiceFactory(name="idle-service")
    rollups_recompute(resolution_s=60, buckets=[MINUTE])
    with time_machine.travel(MINUTE + timedelta(minutes=5), tick=False):
        attainment = api_as(charlie).get("/api/v1/telemetry/summary").json()["attainment"]
    assert attainment == [
        {"service": "chat", "attainment": 0.5, "requests_timed": 4, "target": 0.9},
        {"service": "idle-service", "attainment": None, "requests_timed": 0, "target": 0.9},
    ]
