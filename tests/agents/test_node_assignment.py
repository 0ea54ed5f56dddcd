"""The control plane pushes an assignment; the agent runs its workers, and keeps them across its own restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from controlplane.fleet.assignments import assignment_create, assignment_push
from controlplane.fleet.models import Node, Worker
from tests.agents.conftest import free_port, sim_worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.slow]


def ready_node(name="node-a"):
    return wait_until(lambda: Node.objects.filter(name=name, status="ready").first(), what=f"{name} ready")


def push(node, workers):
    assignment = assignment_create(node=node, workers=workers, plan=None, actor=None, reason="test")
    assignment_push(assignment=assignment)
    return assignment


def rows(node):
    return {worker.name: worker.status for worker in Worker.objects.filter(node=node)}


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_an_assignment_starts_its_workers_and_a_newer_one_stops_what_it_drops(start_agent):
    agent = start_agent("node-a")
    node = ready_node()
    workers = [sim_worker("prefill-0", 0, free_port(), role="prefill"),
               sim_worker("decode-0", 1, free_port(), role="decode")]  # fmt: skip
    pushed = time.monotonic()
    push(node, workers)
    wait_until(lambda: rows(node) == {"prefill-0": "ready", "decode-0": "ready"}, what="both workers ready")
    print(f"\nassignment to both workers ready in the control plane: {time.monotonic() - pushed:.2f} s")
    status = agent.status()
    assert status["generation"] == 1
    by_name = {w["name"]: w for w in status["workers"]}
    assert all(w["healthy"] and w["ready"] and w["restarts"] == 0 for w in by_name.values())
    assert httpx.get(f"http://127.0.0.1:{workers[0]['port']}/health").status_code == 200
    environment = Path(f"/proc/{by_name['decode-0']['pid']}/environ").read_bytes()
    assert b"CUDA_VISIBLE_DEVICES=1\0" in environment
    assert b"CLEAVE_BOOTSTRAP_TOKEN" not in environment  # the agent's secret stays with the agent
    wait_until(lambda: Node.objects.get(pk=node.pk).generation_applied == 1, what="generation 1 applied")

    push(node, workers[:1])
    wait_until(lambda: rows(node) == {"prefill-0": "ready", "decode-0": "stopped"}, what="decode-0 stopped")
    assert not alive(by_name["decode-0"]["pid"])
    assert [w["name"] for w in agent.status()["workers"]] == ["prefill-0"]
    assert agent.worker("prefill-0")["pid"] == by_name["prefill-0"]["pid"]  # untouched
    wait_until(lambda: Node.objects.get(pk=node.pk).generation_applied == 2, what="generation 2 applied")
    assert not (agent.state_dir / "workers" / "decode-0.json").exists()


def test_a_killed_agent_leaves_its_workers_serving_and_the_next_one_adopts_them(start_agent):
    agent = start_agent("node-a")
    node = ready_node()
    workers = [sim_worker("colocated-0", 0, free_port()), sim_worker("colocated-1", 1, free_port())]
    push(node, workers)
    wait_until(lambda: all(w["ready"] for w in agent.status()["workers"]), what="workers ready")
    pids = agent.worker_pids()

    agent.kill()
    assert all(alive(pid) for pid in pids.values())
    assert httpx.get(f"http://127.0.0.1:{workers[1]['port']}/health").status_code == 200
    agent.start()
    status = wait_until(lambda: (s := agent.status())["generation_applied"] == 1 and s, what="resumed")
    assert status["generation"] == 1
    assert {w["name"]: w["pid"] for w in status["workers"]} == pids
    wait_until(lambda: all(w["ready"] for w in agent.status()["workers"]), what="adopted workers ready")
    assert "adopted worker colocated-0" in agent.log_text()


def test_a_cleanly_stopped_agent_stops_its_workers_and_starts_them_again(start_agent):
    agent = start_agent("node-a")
    node = ready_node()
    push(node, [sim_worker("colocated-0", 3, free_port())])
    wait_until(lambda: rows(node) == {"colocated-0": "ready"}, what="worker ready")
    pid = agent.worker_pids()["colocated-0"]

    assert agent.stop() == 0
    assert not alive(pid)
    assert rows(node) == {"colocated-0": "stopped"}  # the last heartbeat said so
    assert agent.worker_pids() == {}

    agent.start()
    wait_until(lambda: rows(node) == {"colocated-0": "ready"}, what="worker ready again")
    assert agent.worker_pids()["colocated-0"] != pid
    assert agent.status()["generation"] == 1


def test_a_worker_left_by_a_killed_agent_that_no_longer_fits_is_replaced(start_agent):
    agent = start_agent("node-a")
    node = ready_node()
    push(node, [sim_worker("colocated-0", 0, free_port())])
    wait_until(lambda: rows(node) == {"colocated-0": "ready"}, what="worker ready")
    old = agent.worker_pids()["colocated-0"]
    agent.kill()
    agent.argv += ["--time-scale", "0.02"]  # the same assignment now means another command line
    agent.start()
    wait_until(lambda: (w := agent.worker("colocated-0")) and w["ready"] and w["pid"] != old, what="replaced")
    assert not alive(old)
    assert "stopping worker colocated-0 (pid" in agent.log_text()


def complete(port, max_tokens, results):
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/v1/completions", timeout=60,
                              json={"model": "llama-3.1-8b", "prompt": "hello " * 200, "max_tokens": max_tokens})
    except httpx.HTTPError as error:  # the worker stopped under it
        results.append((type(error).__name__, time.monotonic()))
    else:
        results.append((response.status_code, time.monotonic()))


def test_a_drained_worker_finishes_what_it_holds_and_keeps_running(start_agent):
    agent = start_agent("node-a", "--stop-grace-s", "1")
    node = ready_node()
    real_time = {"time_scale": 1.0}  # a request takes seconds, as on a GPU
    idle, busy = (sim_worker("decode-0", 0, free_port(), engine_args=real_time),
                  sim_worker("decode-1", 1, free_port(), engine_args=real_time))  # fmt: skip
    push(node, [idle, busy])
    wait_until(lambda: all(w["ready"] for w in agent.status()["workers"]), what="workers ready")
    finished, cut = [], []
    requests = [threading.Thread(target=complete, args=(idle["port"], 150, finished)),
                threading.Thread(target=complete, args=(busy["port"], 2000, cut))]  # fmt: skip
    for thread in requests:
        thread.start()
    time.sleep(0.3)

    response = agent.signed("POST", "/v1/workers/decode-0/drain", {"deadline_s": 30}, generation=1)
    assert response.status_code == 202, response.text
    assert (response.json()["status"], response.json()["drained"]) == ("draining", False)
    agent.signed("POST", "/v1/workers/decode-1/drain", {"deadline_s": 0.5}, generation=1)
    wait_until(lambda: rows(node) == {"decode-0": "draining", "decode-1": "draining"}, what="reported draining")

    drained = wait_until(lambda: (w := agent.worker("decode-0")) and w["drained"] and w, what="decode-0 drained")
    assert drained["drain_outcome"] == "idle"
    requests[0].join(10)
    assert [status for status, _ in finished] == [200]  # what it held was served
    late = wait_until(lambda: (w := agent.worker("decode-1")) and w["drained"] and w, what="decode-1 drained")
    assert late["drain_outcome"] == "deadline"
    assert not cut  # still running at the deadline
    assert alive(drained["pid"])
    assert alive(late["pid"])
