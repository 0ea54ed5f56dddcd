"""An agent trades its bootstrap token for a node token, keeps it across restarts, and heartbeats."""

from __future__ import annotations

import json

import pytest

from controlplane.accounts.models import ApiToken
from controlplane.accounts.services import token_revoke
from controlplane.fleet.models import Node
from tests.agents.conftest import wait_until

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.slow]


def test_it_registers_and_heartbeats_until_the_node_is_ready(start_agent):
    agent = start_agent("node-a")
    node = wait_until(lambda: Node.objects.filter(name="node-a", status="ready").first(), what="node ready")
    assert (node.tier.name, node.gpu_count, node.agent_url) == ("H100-SXM-80GB", 8, agent.url)
    assert node.generation_applied == 0
    credentials = agent.state_dir / "credentials.json"
    assert credentials.stat().st_mode & 0o777 == 0o600
    assert agent.state_dir.stat().st_mode & 0o777 == 0o700
    assert json.loads(credentials.read_text())["node_id"] == node.pk
    assert agent.token() not in agent.log_text()


def test_a_restarted_agent_keeps_its_node_token(start_agent):
    agent = start_agent("node-a")
    token = agent.token()
    wait_until(lambda: Node.objects.filter(name="node-a", status="ready").exists(), what="node ready")
    assert agent.stop() == 0
    before = Node.objects.get(name="node-a").last_heartbeat_at
    agent.start()
    wait_until(lambda: Node.objects.get(name="node-a").last_heartbeat_at > before, what="a new heartbeat")
    assert agent.token() == token
    assert ApiToken.objects.filter(node__name="node-a", scope="node").count() == 1


def test_a_refused_node_token_makes_it_register_again(start_agent):
    agent = start_agent("node-a")
    token = agent.token()
    wait_until(lambda: Node.objects.filter(name="node-a", status="ready").exists(), what="node ready")
    token_revoke(actor=None, token=ApiToken.objects.get(node__name="node-a", revoked_at__isnull=True))
    wait_until(lambda: agent.token() != token, what="a new node token")
    fresh = ApiToken.objects.get(node__name="node-a", revoked_at__isnull=True)
    before = Node.objects.get(name="node-a").last_heartbeat_at
    wait_until(lambda: Node.objects.get(name="node-a").last_heartbeat_at > before, what="heartbeats with it")
    assert fresh.digest == __import__("hashlib").sha256(agent.token().encode()).hexdigest()


def test_an_agent_restarted_at_another_address_registers_it(start_agent):
    agent = start_agent("node-a")
    wait_until(lambda: Node.objects.filter(name="node-a", status="ready").exists(), what="node ready")
    assert agent.stop() == 0
    agent.argv += ["--advertise-url", "http://gpu-node-a.internal:9100"]
    agent.start()
    wait_until(lambda: Node.objects.get(name="node-a").agent_url == "http://gpu-node-a.internal:9100",
               what="the new address registered")  # fmt: skip
