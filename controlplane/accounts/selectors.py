"""Reads of users, tokens and audit events."""

from __future__ import annotations

from django.db.models import QuerySet

from controlplane.accounts.models import ApiToken, AuditEvent, User


def user_list() -> QuerySet[User]:
    return User.objects.all()


def token_list() -> QuerySet[ApiToken]:
    return ApiToken.objects.select_related("user", "created_by")


def audit_event_list() -> QuerySet[AuditEvent]:
    return AuditEvent.objects.select_related("actor")
