"""Writes for users, tokens and the audit log. Every write is one transaction and leaves an AuditEvent."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from controlplane.accounts.models import ApiToken, AuditEvent, Role, TokenScope, User
from controlplane.accounts.tokens import new_token_secret, token_digest
from controlplane.common.errors import ApplicationError
from controlplane.common.snapshots import snapshot

if TYPE_CHECKING:
    from controlplane.fleet.models import Node

_USER_FIELDS = ("username", "email", "role", "is_active")
_TOKEN_FIELDS = ("name", "user", "scope", "node", "prefix", "expires_at", "revoked_at")


def audit_record(
    *,
    actor: User | None,
    verb: str,
    obj: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    system: str = "system",
) -> AuditEvent:
    """Record a state change. `actor` is None for system jobs, which `system` then names (e.g. "beat")."""
    label = actor.get_username() if actor is not None else f"system:{system}"
    return AuditEvent.objects.create(
        actor=actor,
        actor_label=label,
        verb=verb,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
    )


@transaction.atomic
def user_create(
    *, actor: User | None, username: str, role: str, password: str | None = None, email: str = ""
) -> User:
    """Create a user. Humans need a password that passes the validators; machine users get none."""
    if User.objects.filter(username=username).exists():
        raise ApplicationError(f"User {username!r} already exists.", fields={"username": ["Already taken."]})
    user = User(username=username, role=role, email=email)
    if role in (Role.ROUTER, Role.AGENT):
        user.set_unusable_password()
    else:
        if not password:
            raise ApplicationError("A password is required.", fields={"password": ["Required for human users."]})
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise ApplicationError("The password is too weak.", fields={"password": exc.messages}) from None
        user.set_password(password)
    user.save()
    audit_record(actor=actor, verb="user.create", obj=user, after=snapshot(user, _USER_FIELDS))
    return user


@transaction.atomic
def user_update(*, actor: User, user: User, role: str | None = None, is_active: bool | None = None) -> User:
    """Change a user's role or deactivate them. An admin cannot demote or deactivate themselves."""
    before = snapshot(user, _USER_FIELDS)
    if user.pk == actor.pk and ((role is not None and role != Role.ADMIN) or is_active is False):
        raise ApplicationError("You cannot demote or deactivate yourself.", code="self_lockout")
    if role is not None:
        user.role = role
    if is_active is not None:
        user.is_active = is_active
    user.save(update_fields=["role", "is_active"])
    audit_record(actor=actor, verb="user.update", obj=user, before=before, after=snapshot(user, _USER_FIELDS))
    return user


@transaction.atomic
def token_create(
    *,
    actor: User | None,
    user: User,
    name: str,
    ttl_days: int | None = None,
    scope: str = TokenScope.API,
    node: Node | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `user`. Returns the row and the secret, which is never stored or shown again.

    A bootstrap token belongs to an agent identity; node tokens are made by node registration.
    """
    if scope == TokenScope.BOOTSTRAP and user.role != Role.AGENT:
        raise ApplicationError(
            "A bootstrap token belongs to a user with the agent role.",
            fields={"user": [f"{user.username} has the {user.role} role, not agent."]},
        )
    ttl = settings.API_TOKEN_DEFAULT_TTL_DAYS if ttl_days is None else ttl_days
    if not 1 <= ttl <= settings.API_TOKEN_MAX_TTL_DAYS:
        raise ApplicationError(
            f"A token lives between 1 and {settings.API_TOKEN_MAX_TTL_DAYS} days.",
            fields={"ttl_days": [f"Must be between 1 and {settings.API_TOKEN_MAX_TTL_DAYS}."]},
        )
    raw, prefix = new_token_secret()
    now = timezone.now()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        digest=token_digest(raw),
        created_at=now,
        expires_at=now + timedelta(days=ttl),
        created_by=actor,
        scope=scope,
        node=node,
    )
    audit_record(actor=actor, verb="token.create", obj=token, after=snapshot(token, _TOKEN_FIELDS))
    return token, raw


@transaction.atomic
def token_revoke(*, actor: User | None, token: ApiToken) -> ApiToken:
    """Revoke a token. Revoking twice is a no-op, not an error."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        return token
    before = snapshot(token, _TOKEN_FIELDS)
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(actor=actor, verb="token.revoke", obj=token, before=before, after=snapshot(token, _TOKEN_FIELDS))
    return token
