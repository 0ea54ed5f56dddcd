"""The role matrix: who may read and write what, on the API."""

from __future__ import annotations

import pytest

from tests.factories import NodeFactory, PlanFactory, UserFactory

pytestmark = pytest.mark.django_db

READ_ENDPOINTS = [
    "/api/v1/tiers/", "/api/v1/nodes/", "/api/v1/workers/", "/api/v1/services/", "/api/v1/profiles/",
    "/api/v1/plans/", "/api/v1/rollouts/", "/api/v1/node-samples/", "/api/v1/worker-samples/",
    "/api/v1/audit-events/", "/api/v1/traffic/records",
]
ADMIN_ENDPOINTS = ["/api/v1/users/", "/api/v1/tokens/"]


@pytest.mark.parametrize("url", READ_ENDPOINTS + ADMIN_ENDPOINTS)
def test_anonymous_gets_401_everywhere(api_as, url):
    response = api_as(None).get(url)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("url", READ_ENDPOINTS)
def test_a_viewer_reads_everything_operational(api_as, charlie, url):
    assert api_as(charlie).get(url).status_code == 200


@pytest.mark.parametrize("url", ADMIN_ENDPOINTS)
def test_users_and_tokens_are_for_admins_only(api_as, alice, bob, charlie, url):
    assert api_as(charlie).get(url).status_code == 403
    assert api_as(bob).get(url).status_code == 403
    assert api_as(alice).get(url).status_code == 200


def test_a_viewer_cannot_write(api_as, charlie):
    client = api_as(charlie)
    assert client.post("/api/v1/nodes/", {"name": "n1", "tier": "H100-SXM-80GB", "gpu_count": 8}, format="json").status_code == 403
    assert client.post("/api/v1/services/", {"name": "s", "model_name": "llama-3.1-8b", "ttft_slo_s": 1, "tpot_slo_s": 0.1}, format="json").status_code == 403
    plan = PlanFactory()
    assert client.post(f"/api/v1/plans/{plan.pk}/approve").status_code == 403


def test_an_operator_manages_nodes_services_and_plans(api_as, bob):
    client = api_as(bob)
    assert client.post("/api/v1/nodes/", {"name": "n1", "tier": "H100-SXM-80GB", "gpu_count": 8}, format="json").status_code == 201
    assert client.post("/api/v1/services/", {"name": "s", "model_name": "llama-3.1-8b", "ttft_slo_s": 1, "tpot_slo_s": 0.1}, format="json").status_code == 201
    plan = PlanFactory()
    assert client.post(f"/api/v1/plans/{plan.pk}/approve").status_code == 200


def test_an_operator_cannot_manage_users_tokens_or_prices(api_as, bob, charlie):
    client = api_as(bob)
    assert client.post("/api/v1/users/", {"username": "eve", "role": "admin", "password": "x" * 20}, format="json").status_code == 403
    assert client.post("/api/v1/tokens/", {"name": "t", "user": "charlie"}, format="json").status_code == 403
    assert client.patch("/api/v1/tiers/H100-SXM-80GB/", {"price_usd_per_gpu_h": "0.01"}, format="json").status_code == 403


def test_an_admin_sets_prices(api_as, alice):
    response = api_as(alice).patch("/api/v1/tiers/H100-SXM-80GB/", {"price_usd_per_gpu_h": "2.5000"}, format="json")
    assert response.status_code == 200
    assert response.json()["price_usd_per_gpu_h"] == "2.5000"


@pytest.mark.parametrize("role", ["router", "agent"])
def test_machine_identities_get_nothing_they_are_not_named_for(api_as, role):
    machine = UserFactory(username=f"{role}-1", role=role)
    client = api_as(machine)
    node = NodeFactory()
    assert client.get("/api/v1/nodes/").status_code == 403
    assert client.get("/api/v1/plans/").status_code == 403
    assert client.delete(f"/api/v1/nodes/{node.pk}/").status_code == 403


def test_a_deactivated_user_is_refused(api_as):
    eve = UserFactory(username="eve", role="admin")
    client = api_as(eve)
    eve.is_active = False
    eve.save()
    assert client.get("/api/v1/nodes/").status_code == 401
