"""Retention deletes raw samples and roll-ups past their age, and nothing younger, in bounded batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.telemetry import tasks
from controlplane.telemetry.models import NodeRollup, NodeSample, ServiceRollup, TierRollup, WorkerSample
from controlplane.telemetry.services import telemetry_retention_enforce
from tests.factories import NodeFactory, ServiceFactory, tier

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def aged(db, settings):
    settings.TELEMETRY_RAW_RETENTION_H = 24
    settings.TELEMETRY_MINUTE_RETENTION_D = 8
    settings.TELEMETRY_HOUR_RETENTION_D = 400
    node, other = NodeFactory(name="n0", gpu_count=2), NodeFactory(name="n1", gpu_count=1)
    chat = ServiceFactory(name="chat")
    for age in (timedelta(hours=25), timedelta(hours=23)):
        NodeSample.objects.bulk_create(
            NodeSample(node=node, gpu_index=gpu, ts=NOW - age - timedelta(seconds=s), utilization=0.5, power_w=100.0)
            for gpu in range(2) for s in range(0, 30, 10)
        )
        NodeSample.objects.create(node=other, gpu_index=0, ts=NOW - age, utilization=0.5, power_w=100.0)
        WorkerSample.objects.create(node=node, worker_name="w", role="decode", ts=NOW - age)
    for resolution_s, ages in ((60, (timedelta(days=9), timedelta(days=7))),
                               (3600, (timedelta(days=401), timedelta(days=399)))):
        for age in ages:
            bucket = {"resolution_s": resolution_s, "bucket_start": NOW - age}
            NodeRollup.objects.create(node=node, **bucket)
            TierRollup.objects.create(tier=tier(), role="idle", **bucket)
            ServiceRollup.objects.create(service=chat, **bucket)
    return node


def test_only_what_is_past_its_retention_is_deleted(aged):
    done = telemetry_retention_enforce(now=NOW)
    assert (done.node_samples, done.worker_samples, done.minute_rollups, done.hour_rollups) == (7, 1, 3, 3)
    assert done.complete
    assert NodeSample.objects.count() == 7
    assert all(ts > NOW - timedelta(hours=24) for ts in NodeSample.objects.values_list("ts", flat=True))
    assert WorkerSample.objects.get().ts == NOW - timedelta(hours=23)
    for model in (NodeRollup, TierRollup, ServiceRollup):
        assert sorted(model.objects.values_list("resolution_s", "bucket_start")) == [
            (60, NOW - timedelta(days=7)), (3600, NOW - timedelta(days=399))
        ]


def test_a_run_past_its_time_budget_stops_and_the_next_goes_on(aged):
    first = telemetry_retention_enforce(now=NOW, time_budget_s=-1)
    assert (first.node_samples, first.complete) == (6, False)  # one batch: the first node's
    assert NodeRollup.objects.count() == 4
    telemetry_retention_enforce(now=NOW)
    assert NodeSample.objects.count() == 7
    assert NodeRollup.objects.count() == 2


def test_the_hourly_task_enforces_it(aged, time_machine):
    time_machine.move_to(NOW, tick=False)
    assert tasks.enforce_retention()["node_samples"] == 7
