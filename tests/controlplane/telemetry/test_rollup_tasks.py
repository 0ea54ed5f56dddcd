"""The beat tasks roll up what is due: the open bucket, the last closed ones again, and a bounded catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings

from controlplane.celery import app
from controlplane.telemetry import tasks
from controlplane.telemetry.models import NodeRollup, NodeSample, TierRollup
from controlplane.telemetry.services import MINUTE_FIRST_BUCKETS, MINUTE_MAX_BUCKETS, rollups_recompute
from tests.factories import NodeFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 3, 1, 12, 0, 30, tzinfo=UTC)
OPEN_MINUTE = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def node(db):
    return NodeFactory(name="n0", gpu_count=1, created_at=NOW - timedelta(days=3))


def minutes_rolled_up():
    return sorted(set(TierRollup.objects.filter(resolution_s=60).values_list("bucket_start", flat=True)))


def test_the_beat_runs_each_task_on_the_telemetry_queue():
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    for name, every in (("telemetry.rollup_minutes", 60), ("telemetry.rollup_hours", 3600),
                        ("telemetry.enforce_retention", 3600)):
        assert schedule[name]["schedule"] == every
        assert schedule[name]["task"] in app.tasks
        assert app.amqp.router.route({}, name)["queue"].name == "telemetry"


def test_the_first_run_rolls_up_the_last_hour_and_the_open_minute(node, time_machine):
    time_machine.move_to(NOW, tick=False)
    tasks.rollup_minutes()
    rolled = minutes_rolled_up()
    assert len(rolled) == MINUTE_FIRST_BUCKETS + 1
    assert (rolled[0], rolled[-1]) == (OPEN_MINUTE - timedelta(minutes=MINUTE_FIRST_BUCKETS), OPEN_MINUTE)


def test_a_later_run_redoes_the_last_closed_minutes_with_late_samples(node, time_machine):
    time_machine.move_to(NOW, tick=False)
    tasks.rollup_minutes()
    late = OPEN_MINUTE - timedelta(minutes=1)
    NodeSample.objects.create(node=node, gpu_index=0, ts=late + timedelta(seconds=20), utilization=1.0, power_w=500.0)
    time_machine.move_to(NOW + timedelta(minutes=1), tick=False)
    tasks.rollup_minutes()
    assert NodeRollup.objects.get(resolution_s=60, bucket_start=late).energy_j == pytest.approx(500.0 * 10)
    assert minutes_rolled_up()[-1] == OPEN_MINUTE + timedelta(minutes=1)


def test_after_an_outage_a_run_catches_up_a_bounded_stretch(node, time_machine):
    last = OPEN_MINUTE - timedelta(hours=5)
    rollups_recompute(resolution_s=60, buckets=[last])
    time_machine.move_to(NOW, tick=False)
    tasks.rollup_minutes()
    rolled = minutes_rolled_up()
    assert len(rolled) == MINUTE_MAX_BUCKETS
    assert (rolled[0], rolled[-1]) == (last - timedelta(minutes=2), last + timedelta(minutes=MINUTE_MAX_BUCKETS - 3))


def test_minutes_whose_samples_may_be_gone_are_never_redone(node, time_machine, settings):
    settings.TELEMETRY_RAW_RETENTION_H = 1
    stale = OPEN_MINUTE - timedelta(minutes=62)
    TierRollup.objects.create(tier=node.tier, role="idle", resolution_s=60, bucket_start=stale, energy_j=42.0)
    time_machine.move_to(NOW, tick=False)
    tasks.rollup_minutes()
    assert TierRollup.objects.get(bucket_start=stale).energy_j == 42.0
    # It starts again at the first minute still wholly inside the raw retention.
    assert minutes_rolled_up()[1] == OPEN_MINUTE - timedelta(minutes=59)


def test_the_hour_task_rolls_up_the_hours_from_their_minutes(node, time_machine):
    time_machine.move_to(NOW, tick=False)
    tasks.rollup_minutes()
    tasks.rollup_hours()
    hours = sorted(NodeRollup.objects.filter(resolution_s=3600).values_list("bucket_start", "gpus"))
    # The first minute run covered the last half hour: the hour before holds the node for half of it.
    assert hours == [
        (OPEN_MINUTE - timedelta(hours=1), pytest.approx(MINUTE_FIRST_BUCKETS / 60)), (OPEN_MINUTE, pytest.approx(1 / 60))
    ]
