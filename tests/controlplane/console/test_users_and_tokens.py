"""Users and tokens: admins create users and tokens (the secret is shown once, never stored) and revoke tokens;
bad input is named at its field and writes nothing; no one else gets in."""

from __future__ import annotations

import pytest

from controlplane.accounts.models import ApiToken, AuditEvent, User
from controlplane.accounts.tokens import token_digest

pytestmark = pytest.mark.django_db


def test_an_admin_creates_a_user_with_a_role(fleet, as_admin):
    response = as_admin.post("/users/create", {"username": "dana", "role": "operator",
                                               "password": "a-long-enough-passphrase"})
    assert response.status_code == 302
    dana = User.objects.get(username="dana")
    assert dana.role == "operator"
    assert dana.check_password("a-long-enough-passphrase")
    assert AuditEvent.objects.filter(verb="user.create", actor_label="alice").exists()


@pytest.mark.parametrize(("data", "field"), [
    ({"username": "dana", "role": "operator", "password": "short"}, "password"),
    ({"username": "dana", "role": "operator", "password": ""}, "password"),
    ({"username": "alice", "role": "viewer", "password": "a-long-enough-passphrase"}, "username"),
    ({"username": "no spaces please", "role": "viewer", "password": "a-long-enough-passphrase"}, "username"),
    ({"username": "dana", "role": "superuser", "password": "a-long-enough-passphrase"}, "role"),
])
def test_bad_users_are_named_and_not_created(fleet, as_admin, data, field):
    before = User.objects.count(), AuditEvent.objects.count()
    response = as_admin.post("/users/create", data)
    assert response.status_code == 400
    assert f'data-error-for="{field}"' in response.content.decode()
    assert (User.objects.count(), AuditEvent.objects.count()) == before


def test_a_new_tokens_secret_is_shown_once(fleet, as_admin, bob):
    response = as_admin.post("/tokens/create", {"user": "bob", "name": "ci", "ttl_days": "30", "scope": "api"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    secret = response.context["secret"]
    assert secret in response.content.decode()
    token = ApiToken.objects.get(name="ci")
    assert token.digest == token_digest(secret)
    assert secret not in (token.prefix, token.digest)
    assert secret not in as_admin.get("/users/").content.decode()


@pytest.mark.parametrize(("data", "field"), [
    ({"user": "nobody", "name": "ci", "ttl_days": "30", "scope": "api"}, "user"),
    ({"user": "bob", "name": "", "ttl_days": "30", "scope": "api"}, "name"),
    ({"user": "bob", "name": "ci", "ttl_days": "0", "scope": "api"}, "ttl_days"),
    ({"user": "bob", "name": "ci", "ttl_days": "100000", "scope": "api"}, "ttl_days"),
    ({"user": "bob", "name": "ci", "ttl_days": "30", "scope": "node"}, "scope"),
    ({"user": "bob", "name": "ci", "ttl_days": "30", "scope": "bootstrap"}, "user"),  # bob is no agent
])
def test_bad_tokens_are_named_and_not_created(fleet, as_admin, bob, data, field):
    before = ApiToken.objects.count(), AuditEvent.objects.count()
    response = as_admin.post("/tokens/create", data)
    assert response.status_code == 400
    assert f'data-error-for="{field}"' in response.content.decode()
    assert (ApiToken.objects.count(), AuditEvent.objects.count()) == before


def test_an_admin_revokes_a_token(fleet, as_admin, bob):
    as_admin.post("/tokens/create", {"user": "bob", "name": "ci", "ttl_days": "30", "scope": "api"})
    token = ApiToken.objects.get(name="ci")
    assert as_admin.post(f"/tokens/{token.pk}/revoke").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert "revoked" in as_admin.get("/users/").content.decode()


def test_operators_cannot_manage_users_or_tokens(fleet, as_operator, charlie):
    assert as_operator.get("/users/").status_code == 403
    assert as_operator.post("/users/create", {"username": "eve", "role": "admin",
                                              "password": "a-long-enough-passphrase"}).status_code == 403
    assert as_operator.post("/tokens/create", {"user": "charlie", "name": "x", "ttl_days": "1",
                                               "scope": "api"}).status_code == 403
    assert not User.objects.filter(username="eve").exists()
    assert not ApiToken.objects.exists()
