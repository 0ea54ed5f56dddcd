"""The canary's verdict: promote when the new pools hold the SLO and the cost, roll back when they do not."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.planning.canary import compare
from controlplane.planning.models import Rollout
from controlplane.traffic.models import RequestRecord
from tests.factories import PlanFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def routing(*workers, tier="H100-SXM-80GB"):
    return {"pools": {"decode": [{"worker": w, "tier": tier, "tp": 1, "weight": 1.0} for w in workers]}}


@pytest.fixture
def rollout():
    service = ServiceFactory(name="chat", ttft_slo_s=1.0, tpot_slo_s=0.1)
    old = PlanFactory(service=service, status="active", routing=routing("n1/d0"))
    new = PlanFactory(service=service, status="rolling_out", routing=routing("n2/d0", tier="L4-24GB"))
    return Rollout.objects.create(service=service, plan=new, previous_plan=old, strategy="canary", status="running",
                                  options={"canary_share": 0.1})


def served(rollout, worker, count, *, ttft=0.3, tpot=0.05, tokens=(500, 100)):
    now = timezone.now()
    RequestRecord.objects.bulk_create(
        RequestRecord(id=uuid.uuid4(), service=rollout.service, arrival_at=now - timedelta(seconds=5),
                      prompt_tokens=tokens[0], output_tokens=tokens[1], ttft_s=ttft, tpot_s=tpot,
                      decode_worker=worker) for _ in range(count)
    )


def test_without_canary_traffic_the_plan_is_promoted_on_its_predictions(rollout):
    verdict = compare(rollout, since=time.time() - 60)
    assert verdict.promote
    assert "no canary traffic" in verdict.reason


def test_a_canary_that_holds_the_slo_and_the_cost_is_promoted(rollout):
    served(rollout, "n1/d0", 90)
    served(rollout, "n2/d0", 10)
    verdict = compare(rollout, since=time.time() - 60)
    assert verdict.promote
    assert (verdict.old.requests, verdict.new.requests) == (90, 10)
    assert verdict.new.usd_per_million_tokens < verdict.old.usd_per_million_tokens  # an L4 costs less than an H100


def test_a_canary_that_misses_the_slo_is_rolled_back(rollout):
    served(rollout, "n1/d0", 90)
    served(rollout, "n2/d0", 10, ttft=2.5)
    verdict = compare(rollout, since=time.time() - 60)
    assert not verdict.promote
    assert verdict.reason.startswith("attainment 0.0%")


def test_a_canary_that_costs_far_more_per_token_is_rolled_back(rollout):
    served(rollout, "n1/d0", 90, tokens=(2000, 500))
    served(rollout, "n2/d0", 10, tokens=(20, 5))  # the canary's GPUs serve almost nothing
    verdict = compare(rollout, since=time.time() - 60)
    assert not verdict.promote
    assert "/Mtok" in verdict.reason
