from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from controlplane.accounts.models import ApiToken, AuditEvent, TokenScope, User
from controlplane.common.serializers import StrictModelSerializer


class UserSerializer(StrictModelSerializer[User]):
    password = serializers.CharField(write_only=True, required=False, style={"input_type": "password"})

    class Meta:
        model = User
        fields = ["id", "username", "email", "role", "is_active", "password", "date_joined", "last_login"]
        read_only_fields = ["id", "date_joined", "last_login"]

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        if self.instance is not None:
            for name in ("username", "email", "password"):
                fields[name].read_only = True
        return fields


class ApiTokenSerializer(StrictModelSerializer[ApiToken]):
    user = serializers.SlugRelatedField(slug_field="username", queryset=User.objects.filter(is_active=True))
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    ttl_days = serializers.IntegerField(
        write_only=True, required=False, min_value=1, max_value=settings.API_TOKEN_MAX_TTL_DAYS
    )

    class Meta:
        model = ApiToken
        fields = ["id", "name", "user", "scope", "node", "prefix", "created_at", "expires_at", "revoked_at",
                  "last_used_at", "created_by", "ttl_days"]
        read_only_fields = ["id", "node", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at",
                            "created_by"]

    def validate_scope(self, value: str) -> str:
        if value == TokenScope.NODE:
            raise serializers.ValidationError("Node tokens are issued when an agent registers.")
        return value


class NewApiTokenSerializer(ApiTokenSerializer):
    """The answer to a token's creation: the only time its secret is shown."""

    token = serializers.CharField(read_only=True, help_text="The secret. Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    class Meta:
        model = AuditEvent
        fields = ["id", "at", "actor_label", "verb", "object_type", "object_id", "object_repr", "before", "after"]
        read_only_fields = fields


