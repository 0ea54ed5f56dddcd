"""The control plane away for a while: the agent keeps its workers, buffers samples, and delivers them all after."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import pytest

from controlplane.fleet.models import Node
from controlplane.telemetry.models import NodeSample, WorkerSample
from tests.agents.conftest import free_port, sim_worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.slow]


def reporting(agent):
    return agent.status()["reporting"]


def final_stats(agent):
    """What the agent says it collected and delivered, in its last log line."""
    return json.loads(re.findall(r"agent stopped; reporting: (\{.*\})", agent.log_text())[-1])


def stored(node):
    return NodeSample.objects.filter(node=node).count() + WorkerSample.objects.filter(node=node).count()


def test_samples_taken_while_the_control_plane_is_away_are_all_delivered_after(start_agent, proxy):
    agent = start_agent("node-a", control_plane=proxy.url)
    node = wait_until(lambda: Node.objects.filter(name="node-a", status="ready").first(), what="node ready")
    assert agent.put(1, [sim_worker("colocated-0", 0, free_port())]).status_code == 202
    wait_until(lambda: WorkerSample.objects.filter(node=node).exists(), what="worker samples flowing")
    pid = agent.worker("colocated-0")["pid"]

    proxy.down()
    away_from = datetime.now(UTC)
    wait_until(lambda: not reporting(agent)["reachable"] and reporting(agent)["buffered"] >= 40,
               what="samples buffered while away")  # fmt: skip
    worker = agent.worker("colocated-0")
    assert (worker["pid"], worker["ready"]) == (pid, True)  # the workers keep serving
    away_until = datetime.now(UTC)
    proxy.up()

    wait_until(lambda: (r := reporting(agent))["reachable"] and r["buffered"] == 0, what="buffer delivered")
    assert NodeSample.objects.filter(node=node, ts__gte=away_from, ts__lte=away_until).count() >= 40
    assert agent.stop() == 0
    stats = final_stats(agent)
    assert (stats["buffered"], stats["dropped"], stats["rejected"]) == (0, 0, 0)
    assert stats["delivered"] == stats["collected"]
    assert stored(node) == stats["collected"]


def test_a_long_outage_keeps_the_newest_samples_and_counts_the_dropped(start_agent, proxy):
    agent = start_agent("node-a", "--buffer-samples", "24", control_plane=proxy.url)
    node = wait_until(lambda: Node.objects.filter(name="node-a", status="ready").first(), what="node ready")
    proxy.down()
    wait_until(lambda: reporting(agent)["dropped"] >= 16, what="the buffer overflowing")
    assert reporting(agent)["buffered"] == 24
    time.sleep(0.2)
    proxy.up()
    wait_until(lambda: (r := reporting(agent))["reachable"] and r["buffered"] == 0, what="buffer delivered")
    assert agent.stop() == 0
    stats = final_stats(agent)
    assert stats["dropped"] >= 16
    assert stored(node) == stats["collected"] - stats["dropped"]
    assert agent.log_text().count("sample buffer full") == 1
