"""The heartbeat sweep marks silent nodes unreachable: in-process, and through a real Celery worker."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.accounts.models import AuditEvent
from controlplane.fleet.models import Node
from controlplane.fleet.services import nodes_mark_unreachable
from tests.factories import NodeFactory


@pytest.mark.django_db
def test_only_nodes_silent_past_the_timeout_are_marked():
    now = timezone.now()
    silent = NodeFactory(status="ready", last_heartbeat_at=now - timedelta(seconds=31))
    fresh = NodeFactory(status="ready", last_heartbeat_at=now - timedelta(seconds=5))
    never = NodeFactory(status="registered", last_heartbeat_at=None)
    assert nodes_mark_unreachable(timeout_s=30) == [silent.name]
    statuses = dict(Node.objects.values_list("name", "status"))
    assert statuses == {silent.name: "unreachable", fresh.name: "ready", never.name: "registered"}


@pytest.mark.django_db
def test_a_second_sweep_marks_nothing_twice():
    NodeFactory(status="ready", last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    nodes_mark_unreachable(timeout_s=30)
    assert nodes_mark_unreachable(timeout_s=30) == []
    assert AuditEvent.objects.filter(verb="node.unreachable").count() == 1


@pytest.mark.slow
def test_the_sweep_runs_through_a_real_worker_and_broker(celery_worker_process):
    from controlplane.fleet.tasks import sweep_heartbeats

    node = NodeFactory(status="ready", last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    sweep_heartbeats.delay()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        node.refresh_from_db()
        if node.status == "unreachable":
            break
        time.sleep(0.2)
    assert node.status == "unreachable"
    assert AuditEvent.objects.get(verb="node.unreachable").actor_label == "system:heartbeat-sweep"
