"""The Django admin, for users with the admin role only, read-only unless a ModelAdmin says otherwise.

Writes in the admin go through the same service functions as the API, so they are audited too.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest


def _is_admin(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_authenticated and user.is_active and getattr(user, "role", None) == "admin")


class CleaveAdminSite(admin.AdminSite):
    site_header = "Cleave administration"
    site_title = "Cleave admin"

    def has_permission(self, request: HttpRequest) -> bool:
        return _is_admin(request)


class CleaveAdminConfig(AdminConfig):
    default_site = "controlplane.common.admin_site.CleaveAdminSite"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Admins may look; changes go through the API, the console or a ModelAdmin that allows them."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_admin(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_admin(request)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
