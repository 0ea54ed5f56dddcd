from __future__ import annotations

from django.contrib import admin

from controlplane.accounts.models import ApiToken, AuditEvent, User
from controlplane.common.admin_site import ReadOnlyAdmin


@admin.register(User)
class UserAdmin(ReadOnlyAdmin):
    list_display = ["username", "email", "role", "is_active", "last_login"]
    list_filter = ["role", "is_active"]
    exclude = ["password"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "user", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
    exclude = ["digest"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_label", "verb", "object_type", "object_id", "object_repr"]
    list_filter = ["verb"]
    search_fields = ["object_id", "actor_label"]
