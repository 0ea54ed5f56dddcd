"""Client keys per service (shown once, revocable) and the routing document routers fetch with an ETag."""

from __future__ import annotations

import pytest

from controlplane.accounts.models import AuditEvent
from controlplane.accounts.tokens import token_digest
from tests.factories import PlanFactory, ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(db):
    return ServiceFactory(name="chat")


def test_an_operator_issues_a_key_shown_once_and_stored_as_a_digest(api_as, bob, chat):
    client = api_as(bob)
    response = client.post(f"/api/v1/services/{chat.pk}/api-keys", {"name": "web app"}, format="json")
    assert response.status_code == 201
    raw = response.json()["key"]
    assert raw.startswith("sk-clv-")
    listed = client.get(f"/api/v1/services/{chat.pk}/api-keys").json()
    assert [key["name"] for key in listed] == ["web app"]
    assert "key" not in listed[0]
    assert chat.api_keys.get().digest == token_digest(raw)
    assert AuditEvent.objects.filter(verb="api_key.create").exists()


def test_a_viewer_cannot_issue_keys(api_as, charlie, chat):
    assert api_as(charlie).post(f"/api/v1/services/{chat.pk}/api-keys", {"name": "x"}, format="json").status_code == 403


def test_the_routing_document_carries_the_active_routing_and_live_key_digests(api_as, bob, chat):
    PlanFactory(service=chat, status="active", routing={"pools": {"decode": [{"worker": "n1/d0", "weight": 1.0}]}})
    client = api_as(bob)
    key_id = client.post(f"/api/v1/services/{chat.pk}/api-keys", {"name": "a"}, format="json").json()["id"]
    router = api_as(UserFactory(username="router-1", role="router"))
    first = router.get(f"/api/v1/services/{chat.pk}/routing")
    assert first.status_code == 200
    assert first.json()["routing"]["pools"]["decode"][0]["worker"] == "n1/d0"
    assert len(first.json()["api_key_digests"]) == 1
    etag = first.headers["ETag"]
    assert router.get(f"/api/v1/services/{chat.pk}/routing", HTTP_IF_NONE_MATCH=etag).status_code == 304
    client.post(f"/api/v1/services/{chat.pk}/api-keys/{key_id}/revoke")
    after = router.get(f"/api/v1/services/{chat.pk}/routing", HTTP_IF_NONE_MATCH=etag)
    assert after.status_code == 200
    assert after.json()["api_key_digests"] == []


def test_a_router_can_read_routing_but_not_manage_keys(api_as, chat):
    router = api_as(UserFactory(username="router-1", role="router"))
    assert router.get(f"/api/v1/services/{chat.pk}/api-keys").status_code == 403
    assert router.get(f"/api/v1/services/{chat.pk}/").status_code == 403


def test_a_key_name_is_required(api_as, bob, chat):
    response = api_as(bob).post(f"/api/v1/services/{chat.pk}/api-keys", {}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["error"]["fields"]
