"""A bad assignment body is refused whole, with a 400 that names the field, and nothing changes."""

from __future__ import annotations

import json

import pytest

from controlplane.fleet.models import Node
from tests.agents.conftest import sim_worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.slow]


def test_bad_bodies_are_refused_naming_the_field(start_agent):
    agent = start_agent("node-a", gpus=4)
    wait_until(lambda: Node.objects.filter(name="node-a", status="ready").exists(), what="node ready")
    good = [sim_worker("a", 0, 18001), sim_worker("b", 1, 18002)]

    def replaced(index, **fields):
        workers = [dict(worker) for worker in good]
        workers[index].update(fields)
        return workers

    cases = [
        ({"node": "node-b", "generation": 1, "workers": good}, "node"),
        ({"node": "node-a", "generation": "1", "workers": good}, "generation"),
        ({"node": "node-a", "generation": 1, "workers": {}}, "workers"),
        ({"node": "node-a", "generation": 1, "workers": ["a"]}, "workers[0]"),
        ({"node": "node-a", "generation": 1, "workers": replaced(1, name="b/../../x")}, "workers[1].name"),
        ({"node": "node-a", "generation": 1, "workers": replaced(1, name="a")}, "workers[1].name"),
        ({"node": "node-a", "generation": 1, "workers": replaced(0, role="chef")}, "workers[0].role"),
        ({"node": "node-a", "generation": 1, "workers": replaced(0, tp=0)}, "workers[0].tp"),
        ({"node": "node-a", "generation": 1, "workers": replaced(0, gpu_ids=[4])}, "workers[0].gpu_ids"),
        ({"node": "node-a", "generation": 1, "workers": replaced(1, gpu_ids=[0])}, "workers[1].gpu_ids"),
        ({"node": "node-a", "generation": 1, "workers": replaced(0, tp=2, gpu_ids=[0])}, "workers[0].gpu_ids"),
        ({"node": "node-a", "generation": 1, "workers": replaced(1, port=18001)}, "workers[1].port"),
        ({"node": "node-a", "generation": 1, "workers": replaced(1, port=agent.port)}, "workers[1].port"),
        ({"node": "node-a", "generation": 1, "workers": replaced(0, port=70000)}, "workers[0].port"),
        ({"node": "node-a", "generation": 1, "workers": replaced(0, tier="A100-SXM-80GB")}, "workers[0].tier"),
        ({"node": "node-a", "generation": 1, "workers": replaced(0, dtype="int3")}, "workers[0].dtype"),
        ({"node": "node-a", "generation": 1, "workers": replaced(0, plan="seven")}, "workers[0].plan"),
        ({"node": "node-a", "generation": 1, "workers": replaced(0, engine_args={"x": [1]})},
         "workers[0].engine_args.x"),
        # The sim's launcher knows its engine args; one it does not know is refused up front.
        ({"node": "node-a", "generation": 1, "workers": replaced(0, engine_args={"warp": 9})}, "workers[0]"),
    ]  # fmt: skip
    for payload, field in cases:
        response = agent.signed("PUT", "/v1/assignment", payload, generation=1)
        assert response.status_code == 400, (field, response.text)
        error = response.json()["error"]
        assert field in error["fields"], (field, error)
        assert error["code"] == "invalid"

    not_json = agent.signed("PUT", "/v1/assignment", None, generation=1)
    assert not_json.status_code == 400
    assert agent.status()["generation"] == 0
    assert not (agent.state_dir / "assignment.json").exists()
    assert agent.put(1, good).status_code == 202
    assert json.loads((agent.state_dir / "assignment.json").read_text())["generation"] == 1


def test_a_drain_needs_a_deadline(start_agent):
    agent = start_agent("node-a")
    wait_until(lambda: Node.objects.filter(name="node-a", status="ready").exists(), what="node ready")
    for payload in ({}, {"deadline_s": -1}, {"deadline_s": "soon"}, {"deadline_s": True}):
        response = agent.signed("POST", "/v1/workers/a/drain", payload)
        assert response.status_code == 400, payload
        assert list(response.json()["error"]["fields"]) == ["deadline_s"]
