"""Bad input to the API: 400 with a JSON body naming the fields, and nothing written."""

from __future__ import annotations

import pytest

from controlplane.accounts.models import AuditEvent
from controlplane.fleet.models import Node
from controlplane.traffic.models import Service

pytestmark = pytest.mark.django_db


def error_fields(response):
    assert response.status_code == 400, response.content
    body = response.json()["error"]
    assert body["code"] == "invalid"
    return body["fields"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "n1", "tier": "H100-SXM-80GB", "gpu_count": 0}, "gpu_count"),
        ({"name": "n1", "tier": "H100-SXM-80GB", "gpu_count": "eight"}, "gpu_count"),
        ({"name": "n1", "tier": "TPU-v5", "gpu_count": 8}, "tier"),
        ({"tier": "H100-SXM-80GB", "gpu_count": 8}, "name"),
        ({"name": "n1", "tier": "H100-SXM-80GB", "gpu_count": 8, "labels": ["a"]}, "labels"),
        ({"name": "n1", "tier": "H100-SXM-80GB", "gpu_count": 8, "agent_url": "not a url"}, "agent_url"),
    ],
)
def test_a_bad_node_is_refused_naming_the_field(api_as, bob, payload, field):
    client = api_as(bob)
    before = AuditEvent.objects.count()
    fields = error_fields(client.post("/api/v1/nodes/", payload, format="json"))
    assert field in fields
    assert not Node.objects.exists()
    assert AuditEvent.objects.count() == before


def test_a_duplicate_node_name_is_refused(api_as, bob):
    client = api_as(bob)
    client.post("/api/v1/nodes/", {"name": "n1", "tier": "H100-SXM-80GB", "gpu_count": 8}, format="json")
    fields = error_fields(client.post("/api/v1/nodes/", {"name": "n1", "tier": "L4-24GB", "gpu_count": 1}, format="json"))
    assert "name" in fields
    assert Node.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"ttft_slo_s": -1}, "ttft_slo_s"),
        ({"tpot_slo_s": "fast"}, "tpot_slo_s"),
        ({"attainment_target": 1.5}, "attainment_target"),
        ({"model_name": "gpt-9"}, "model_name"),
        ({"model_name": "my-model", "architecture": {"layers": 0}}, "architecture"),
        ({"name": "Not A Slug!"}, "name"),
    ],
)
def test_a_bad_service_is_refused_naming_the_field(api_as, bob, payload, field):
    body = {"name": "chat", "model_name": "llama-3.1-8b", "ttft_slo_s": 1.0, "tpot_slo_s": 0.1, **payload}
    fields = error_fields(api_as(bob).post("/api/v1/services/", body, format="json"))
    assert field in fields
    assert not Service.objects.exists()


def test_an_operator_cannot_set_a_status_that_only_agents_report(api_as, bob):
    client = api_as(bob)
    node_id = client.post("/api/v1/nodes/", {"name": "n1", "tier": "H100-SXM-80GB", "gpu_count": 8}, format="json").json()["id"]
    fields = error_fields(client.patch(f"/api/v1/nodes/{node_id}/", {"status": "unreachable"}, format="json"))
    assert "status" in fields
    assert Node.objects.get().status == "registered"


def test_an_unknown_field_is_named_not_ignored(api_as, bob):
    fields = error_fields(
        api_as(bob).post("/api/v1/nodes/", {"name": "n1", "tier": "H100-SXM-80GB", "gpu_count": 8, "gpus": 4}, format="json")
    )
    assert fields == {"gpus": ["Unknown field."]}
    assert not Node.objects.exists()


def test_malformed_json_is_a_400(api_as, bob):
    response = api_as(bob).post("/api/v1/nodes/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
