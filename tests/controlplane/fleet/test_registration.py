"""Agents register with a bootstrap token, get a node token, and heartbeat with it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.accounts.models import ApiToken, AuditEvent
from controlplane.fleet.models import Node, Worker
from tests.factories import PlanFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def worker(**overrides):
    return {"name": "prefill-0", "role": "prefill", "engine": "sim", "model": "llama-3.1-8b", "tp": 1, "gpu_ids": [0],
            "port": 8100, "status": "ready", **overrides}


def test_registering_creates_the_node_and_a_node_token_stored_hashed(register_node):
    node, _ = register_node()
    row = Node.objects.get(pk=node["id"])
    assert (row.name, row.tier.name, row.gpu_count, row.status) == ("gpu-node-1", "H100-SXM-80GB", 8, "registered")
    token = ApiToken.objects.get(node=row)
    assert token.scope == "node"
    assert token.user.username == "node:gpu-node-1"
    assert AuditEvent.objects.filter(verb="node.register", object_id=str(row.pk)).exists()


def test_registering_again_rotates_the_token(register_node):
    node, old_client = register_node()
    _, new_client = register_node()
    assert Node.objects.count() == 1
    beat = {"generation_applied": 0, "workers": []}
    assert old_client.post(f"/api/v1/nodes/{node['id']}/heartbeat", beat, format="json").status_code == 401
    assert new_client.post(f"/api/v1/nodes/{node['id']}/heartbeat", beat, format="json").status_code == 200


def test_a_node_cannot_change_tier_by_registering_again(register_node, bootstrap_token):
    register_node(tier="H100-SXM-80GB")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {bootstrap_token}")
    response = client.post("/api/v1/nodes/register", {"name": "gpu-node-1", "tier": "A100-SXM-80GB", "gpu_count": 8,
                                                      "agent_url": "http://127.0.0.1:1"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "tier_mismatch"


def test_only_a_bootstrap_token_registers(api_as, alice, register_node):
    body = {"name": "n", "tier": "L4-24GB", "gpu_count": 1, "agent_url": "http://127.0.0.1:1"}
    assert api_as(alice).post("/api/v1/nodes/register", body, format="json").status_code == 403
    _, node_client = register_node()
    assert node_client.post("/api/v1/nodes/register", body, format="json").status_code == 403


def test_a_bootstrap_token_can_do_nothing_else(bootstrap_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {bootstrap_token}")
    assert client.get("/api/v1/nodes/").status_code == 403
    assert client.post("/api/v1/telemetry/samples", {"node_samples": []}, format="json").status_code == 403


def test_a_bad_registration_names_the_field(bootstrap_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {bootstrap_token}")
    response = client.post("/api/v1/nodes/register", {"name": "bad name!", "tier": "TPU", "gpu_count": 0,
                                                      "agent_url": "nope"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"name", "tier", "gpu_count", "agent_url"}
    assert not Node.objects.exists()


def test_a_heartbeat_makes_the_node_ready_and_records_its_workers(register_node):
    service = ServiceFactory(name="chat")
    plan = PlanFactory(service=service)
    node, client = register_node()
    response = client.post(f"/api/v1/nodes/{node['id']}/heartbeat", {
        "generation_applied": 3, "agent_version": "1.0",
        "workers": [worker(service="chat", plan=plan.pk), worker(name="decode-0", role="decode", gpu_ids=[1, 2], tp=2)],
    }, format="json")
    assert response.status_code == 200
    assert response.json() == {"generation_desired": 0, "status": "ready"}
    row = Node.objects.get(pk=node["id"])
    assert (row.status, row.generation_applied) == ("ready", 3)
    workers = {w.name: w for w in Worker.objects.filter(node=row)}
    assert workers["prefill-0"].service == service
    assert workers["prefill-0"].plan == plan
    assert (workers["decode-0"].tp, workers["decode-0"].gpu_ids) == (2, [1, 2])


def test_a_worker_no_longer_reported_is_stopped(register_node):
    node, client = register_node()
    url = f"/api/v1/nodes/{node['id']}/heartbeat"
    client.post(url, {"generation_applied": 1, "workers": [worker(), worker(name="decode-0", role="decode")]}, format="json")
    client.post(url, {"generation_applied": 2, "workers": [worker()]}, format="json")
    statuses = dict(Worker.objects.values_list("name", "status"))
    assert statuses == {"prefill-0": "ready", "decode-0": "stopped"}


def test_an_unreachable_node_that_beats_again_is_ready(register_node):
    node, client = register_node()
    Node.objects.filter(pk=node["id"]).update(status="unreachable", last_heartbeat_at=timezone.now() - timedelta(hours=1))
    client.post(f"/api/v1/nodes/{node['id']}/heartbeat", {"generation_applied": 0, "workers": []}, format="json")
    assert Node.objects.get(pk=node["id"]).status == "ready"
    assert AuditEvent.objects.filter(verb="node.ready").exists()


def test_a_cordoned_node_stays_cordoned(register_node):
    node, client = register_node()
    Node.objects.filter(pk=node["id"]).update(status="cordoned")
    client.post(f"/api/v1/nodes/{node['id']}/heartbeat", {"generation_applied": 0, "workers": []}, format="json")
    assert Node.objects.get(pk=node["id"]).status == "cordoned"


def test_a_node_cannot_heartbeat_for_another(register_node):
    one, _ = register_node("one")
    _, two_client = register_node("two")
    response = two_client.post(f"/api/v1/nodes/{one['id']}/heartbeat", {"generation_applied": 0, "workers": []},
                               format="json")
    assert response.status_code == 403


def test_a_malformed_heartbeat_names_the_field_and_changes_nothing(register_node):
    node, client = register_node()
    response = client.post(f"/api/v1/nodes/{node['id']}/heartbeat", {
        "generation_applied": -1, "workers": [worker(role="chef"), worker(name="x", service="ghost")],
    }, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"generation_applied", "workers[0].role", "workers[1].service"}
    assert Node.objects.get(pk=node["id"]).status == "registered"
    assert not Worker.objects.exists()
