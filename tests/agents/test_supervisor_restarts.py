"""A worker that dies is restarted with a growing backoff and its restarts are reported; one nobody can run fails alone."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from controlplane.fleet.models import Node, Worker
from tests.agents.conftest import free_port, sim_worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.slow]


def ready(agent, name):
    return (worker := agent.worker(name)) is not None and worker["ready"] and worker


def test_a_killed_worker_is_restarted_with_backoff_and_its_restarts_reported(start_agent):
    agent = start_agent("node-a", "--restart-backoff-s", "0.5", "--restart-backoff-max-s", "4")
    wait_until(lambda: Node.objects.filter(name="node-a", status="ready").exists(), what="node ready")
    assert agent.put(1, [sim_worker("colocated-0", 0, free_port())]).status_code == 202
    first = wait_until(lambda: ready(agent, "colocated-0"), what="worker ready")

    delays = []
    previous = first
    for restarts in (1, 2):
        killed = time.monotonic()
        os.kill(previous["pid"], signal.SIGKILL)
        current = wait_until(
            lambda pid=previous["pid"], n=restarts: (w := ready(agent, "colocated-0")) and w["pid"] != pid
            and w["restarts"] == n and w,
            what=f"restart {restarts}",
        )  # fmt: skip
        delays.append(time.monotonic() - killed)
        assert current["last_exit"] == -signal.SIGKILL
        assert "killed by SIGKILL" in current["reason"] or current["reason"] == ""
        previous = current
    # 0.5 s, then 1 s before the relaunch (the sim itself starts in a fraction of a second).
    assert delays[0] >= 0.5
    assert delays[1] >= 1.0
    assert delays[1] > delays[0]
    assert "colocated-0 killed by SIGKILL; restart 2 in 1.0 s" in agent.log_text()
    assert Worker.objects.get(name="colocated-0").status in ("ready", "failed", "starting")
    wait_until(lambda: Worker.objects.get(name="colocated-0").status == "ready", what="reported ready again")


def test_a_worker_no_launcher_can_run_is_reported_failed_and_the_others_run(start_agent):
    agent = start_agent("node-a")
    wait_until(lambda: Node.objects.filter(name="node-a", status="ready").exists(), what="node ready")
    unknown = sim_worker("trt-0", 0, free_port(), engine="tensorrt-llm")
    response = agent.put(1, [unknown, sim_worker("colocated-0", 1, free_port())])
    assert response.status_code == 202, response.text
    wait_until(lambda: ready(agent, "colocated-0"), what="the other worker ready")
    failed = agent.worker("trt-0")
    assert failed["status"] == "failed"
    assert "no launcher for colocated worker trt-0: unknown engine 'tensorrt-llm'" in failed["reason"]
    assert failed["pid"] is None
    assert agent.status()["generation_applied"] == 1


def test_a_router_worker_reads_its_routing_from_a_file_the_agent_rewrites_in_place(start_agent):
    agent = start_agent("node-a")
    wait_until(lambda: Node.objects.filter(name="node-a", status="ready").exists(), what="node ready")
    router = sim_worker("router-0", 0, free_port(), role="router", gpu_ids=[], model="llama-3.1-8b",
                        routing={"service": "chat", "model": "llama-3.1-8b", "pools": {}})  # fmt: skip
    assert agent.put(1, [router]).status_code == 202
    first = wait_until(lambda: ready(agent, "router-0"), what="the router ready")
    routing_file = agent.state_dir / "routing" / "router-0.json"
    assert json.loads(routing_file.read_text())["service"] == "chat"

    moved = {**router, "routing": {"service": "chat", "model": "llama-3.1-8b", "pools": {}, "version": 2}}
    assert agent.put(2, [moved]).status_code == 202
    wait_until(lambda: json.loads(routing_file.read_text()).get("version") == 2, what="the routing rewritten")
    assert agent.worker("router-0")["pid"] == first["pid"]  # a routing change is no restart
    assert agent.put(3, []).status_code == 202
    wait_until(lambda: not routing_file.exists(), what="the routing file removed with its router")
