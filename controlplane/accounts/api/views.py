from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.accounts import selectors, services
from controlplane.accounts.api.filters import AuditEventFilter, TokenFilter
from controlplane.accounts.api.serializers import (
    ApiTokenSerializer,
    AuditEventSerializer,
    NewApiTokenSerializer,
    UserSerializer,
)
from controlplane.accounts.models import ApiToken, Role, TokenScope, User
from controlplane.common.viewsets import READ_ONLY_METHODS, ServiceModelViewSet


class UserViewSet(ServiceModelViewSet):
    """Users and their roles. Admins only."""

    queryset = selectors.user_list()
    serializer_class = UserSerializer
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    lookup_field = "username"
    filterset_fields = ["role", "is_active"]
    http_method_names = [*READ_ONLY_METHODS, "post", "patch"]

    def create_object(self, data: dict[str, Any]) -> User:
        return services.user_create(actor=self.actor(), **data)

    def update_object(self, instance: User, data: dict[str, Any]) -> User:
        return services.user_update(actor=self.actor(), user=instance, **data)


class ApiTokenViewSet(viewsets.ReadOnlyModelViewSet):
    """API tokens. Admins create (the secret is shown once) and revoke them."""

    queryset = selectors.token_list()
    serializer_class = ApiTokenSerializer
    filterset_class = TokenFilter
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(request=ApiTokenSerializer, responses={201: NewApiTokenSerializer})
    def create(self, request: Request) -> Response:
        body = ApiTokenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        token, raw = services.token_create(
            actor=request.user,
            user=body.validated_data["user"],
            name=body.validated_data["name"],
            ttl_days=body.validated_data.get("ttl_days"),
            scope=body.validated_data.get("scope", TokenScope.API),
        )
        answer = NewApiTokenSerializer(token).data
        answer["token"] = raw
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ApiTokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        token: ApiToken = self.get_object()
        token = services.token_revoke(actor=request.user, token=token)
        return Response(ApiTokenSerializer(token).data)


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit log: every state change made through a service. Read-only."""

    queryset = selectors.audit_event_list()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
