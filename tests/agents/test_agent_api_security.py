"""Only the control plane's signed, fresh, first-seen calls get through; a refused call changes nothing."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from controlplane.fleet.agent_client import AgentClient, AgentError
from controlplane.fleet.models import Node
from profiler.signing import sign, signing_key
from tests.agents.conftest import wait_until

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.slow]


@pytest.fixture
def agent(start_agent):
    agent = start_agent("node-a")
    wait_until(lambda: Node.objects.filter(name="node-a", status="ready").exists(), what="node ready")
    return agent


def body(agent, generation, workers=()):
    return {"node": agent.name, "generation": generation, "workers": list(workers)}


def assert_unchanged(agent, generation):
    status = agent.status()
    assert (status["generation"], status["workers"]) == (generation, [])
    stored = agent.state_dir / "assignment.json"
    assert (json.loads(stored.read_text())["generation"] if stored.exists() else 0) == generation


def test_health_needs_no_signature_and_says_nothing_else(agent):
    response = httpx.get(f"{agent.url}/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_it_refuses_unsigned_calls(agent):
    for method, path in (("PUT", "/v1/assignment"), ("GET", "/v1/status"), ("POST", "/v1/workers/x/drain")):
        response = httpx.request(method, f"{agent.url}{path}", json=body(agent, 1))
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "unsigned"
    assert_unchanged(agent, 0)


def test_it_refuses_a_call_signed_with_another_key_or_over_another_body(agent):
    assert agent.signed("PUT", "/v1/assignment", body(agent, 1), generation=1, token="not-the-token").status_code == 401
    headers = sign(signing_key(agent.token()), method="PUT", path="/v1/assignment",
                   body=json.dumps(body(agent, 1)).encode(), generation=1, now=time.time()).as_dict()  # fmt: skip
    tampered = httpx.put(f"{agent.url}/v1/assignment", content=json.dumps(body(agent, 2)).encode(), headers=headers)
    assert tampered.status_code == 401
    assert tampered.json()["error"] == {"code": "bad_signature", "message": "bad signature"}
    assert_unchanged(agent, 0)


def test_it_refuses_a_replayed_call(agent):
    payload = json.dumps(body(agent, 1), sort_keys=True).encode()
    headers = sign(signing_key(agent.token()), method="PUT", path="/v1/assignment", body=payload, generation=1,
                   now=time.time()).as_dict()  # fmt: skip
    first = httpx.put(f"{agent.url}/v1/assignment", content=payload, headers=headers)
    assert first.status_code == 202, first.text
    again = httpx.put(f"{agent.url}/v1/assignment", content=payload, headers=headers)
    assert (again.status_code, again.json()["error"]["code"]) == (401, "replayed")
    assert_unchanged(agent, 1)


def test_it_refuses_a_call_outside_the_clock_window(agent):
    response = agent.signed("PUT", "/v1/assignment", body(agent, 1), generation=1, now=time.time() - 600)
    assert response.status_code == 401
    assert "window" in response.json()["error"]["message"]
    assert_unchanged(agent, 0)


def test_it_refuses_a_stale_generation_and_takes_the_same_one_twice_as_a_no_op(agent):
    assert agent.put(3, []).status_code == 202
    stale = agent.put(2, [])
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "stale_generation"
    assert "generation" in stale.json()["error"]["fields"]
    same = agent.put(3, [])
    assert (same.status_code, same.json()) == (200, {"accepted": True, "generation": 3, "changed": False})
    assert_unchanged(agent, 3)


def test_the_signed_generation_must_be_the_bodys(agent):
    response = agent.signed("PUT", "/v1/assignment", body(agent, 5), generation=6)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["generation"]
    assert_unchanged(agent, 0)


def test_the_control_planes_own_client_gets_through_and_sees_a_refusal_as_an_error(agent):
    node = Node.objects.get(name="node-a")
    with AgentClient(node) as client:
        assert client.put_assignment(body(agent, 2)) == {"accepted": True, "generation": 2, "changed": True}
        assert client.status()["generation"] == 2
        with pytest.raises(AgentError, match="409"):
            client.put_assignment(body(agent, 1))
        with pytest.raises(AgentError, match="404"):
            client.drain("nobody", deadline_s=5)


def test_it_serves_over_tls_and_the_control_plane_calls_it_there(start_agent, self_signed, settings):
    cert, key = self_signed
    agent = start_agent("node-a", "--tls-cert", str(cert), "--tls-key", str(key), ca=cert)
    node = wait_until(lambda: Node.objects.filter(name="node-a", status="ready").first(), what="node ready")
    assert node.agent_url == f"https://127.0.0.1:{agent.port}"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{agent.port}/health", timeout=2)
    settings.AGENT_CA_BUNDLE = str(cert)
    with AgentClient(node) as client:
        assert client.put_assignment(body(agent, 1))["accepted"] is True
        assert client.status()["generation"] == 1
