"""API tokens: stored hashed, shown once, expiring, revocable."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from controlplane.accounts.models import ApiToken
from controlplane.accounts.tokens import token_digest

pytestmark = pytest.mark.django_db


def test_the_secret_is_shown_once_and_only_its_digest_is_stored(api_as, alice, charlie):
    response = api_as(alice).post("/api/v1/tokens/", {"name": "ci", "user": "charlie", "ttl_days": 7}, format="json")
    assert response.status_code == 201
    raw = response.json()["token"]
    stored = ApiToken.objects.get(pk=response.json()["id"])
    assert stored.digest == token_digest(raw)
    assert raw not in {stored.digest, stored.prefix, stored.name}
    listed = api_as(alice).get(f"/api/v1/tokens/{stored.pk}/").json()
    assert "token" not in listed
    assert "digest" not in listed


def test_a_token_authenticates_as_its_user(api_as, alice, charlie):
    raw = api_as(alice).post("/api/v1/tokens/", {"name": "ci", "user": "charlie"}, format="json").json()["token"]
    client = api_as(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/nodes/").status_code == 200
    assert client.post("/api/v1/nodes/", {}, format="json").status_code == 403  # still only a viewer


def test_an_expired_token_is_refused(api_as, alice, charlie):
    raw = api_as(alice).post("/api/v1/tokens/", {"name": "short", "user": "charlie", "ttl_days": 1}, format="json").json()["token"]
    client = api_as(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/nodes/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(days=1, seconds=1)):
        response = client.get("/api/v1/nodes/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Token expired."


def test_a_revoked_token_is_refused_and_revoking_again_is_harmless(api_as, alice, charlie):
    created = api_as(alice).post("/api/v1/tokens/", {"name": "ci", "user": "charlie"}, format="json").json()
    client = api_as(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created['token']}")
    admin = api_as(alice)
    assert admin.post(f"/api/v1/tokens/{created['id']}/revoke").status_code == 200
    assert admin.post(f"/api/v1/tokens/{created['id']}/revoke").status_code == 200
    assert client.get("/api/v1/nodes/").json()["error"]["message"] == "Token revoked."


def test_a_made_up_token_is_refused(api_as):
    client = api_as(None)
    client.credentials(HTTP_AUTHORIZATION="Bearer clv_00000000_not-a-real-token")
    assert client.get("/api/v1/nodes/").status_code == 401


def test_a_token_cannot_outlive_the_maximum(api_as, alice, settings):
    response = api_as(alice).post(
        "/api/v1/tokens/", {"name": "forever", "user": "alice", "ttl_days": settings.API_TOKEN_MAX_TTL_DAYS + 1}, format="json"
    )
    assert response.status_code == 400
    assert "ttl_days" in response.json()["error"]["fields"]
