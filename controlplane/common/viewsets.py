"""The one base viewset: declarative reads, and writes that go through a service function.

A subclass sets `queryset`, `serializer_class`, `filterset_class`, the roles (see
common.permissions) and `http_method_names`, and implements `create_object`, `update_object`
or `destroy_object` for the writes it allows. Serializers validate; services write and audit.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import serializers, viewsets
from rest_framework.exceptions import MethodNotAllowed

from controlplane.accounts.models import User

READ_ONLY_METHODS = ["get", "head", "options"]


class ServiceModelViewSet(viewsets.ModelViewSet):
    def actor(self) -> User:
        user = self.request.user
        assert isinstance(user, User)
        return user

    def create_object(self, data: dict[str, Any]) -> models.Model:
        raise MethodNotAllowed("POST")

    def update_object(self, instance: Any, data: dict[str, Any]) -> models.Model:
        raise MethodNotAllowed(self.request.method or "PATCH")

    def destroy_object(self, instance: Any) -> None:
        raise MethodNotAllowed("DELETE")

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        serializer.instance = self.create_object(dict(serializer.validated_data))

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        serializer.instance = self.update_object(serializer.instance, dict(serializer.validated_data))

    def perform_destroy(self, instance: Any) -> None:
        self.destroy_object(instance)
