from __future__ import annotations

import django_filters

from controlplane.accounts.models import ApiToken, AuditEvent


class TokenFilter(django_filters.FilterSet):
    user = django_filters.CharFilter(field_name="user__username")
    active = django_filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull")

    class Meta:
        model = ApiToken
        fields = ["user", "active"]


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_label")
    verb = django_filters.CharFilter(field_name="verb", lookup_expr="startswith")
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")

    class Meta:
        model = AuditEvent
        fields = ["actor", "verb", "object_type", "object_id", "since"]
