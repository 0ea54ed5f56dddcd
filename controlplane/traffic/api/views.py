from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.accounts.models import Role
from controlplane.common.viewsets import READ_ONLY_METHODS, ServiceModelViewSet
from controlplane.traffic import selectors, services
from controlplane.traffic.api.filters import ProfileFilter, RecordFilter
from controlplane.traffic.api.serializers import (
    IngestResultSerializer,
    RecordBatchSerializer,
    RequestRecordSerializer,
    ServiceSerializer,
    WorkloadProfileSerializer,
)
from controlplane.traffic.ingest import parse_records
from controlplane.traffic.models import Service


class ServiceViewSet(ServiceModelViewSet):
    """Served models with their SLOs and rebalancing policy. Operators manage them."""

    queryset = selectors.service_list()
    serializer_class = ServiceSerializer
    filterset_fields = ["model_name", "auto_approve"]
    http_method_names = [*READ_ONLY_METHODS, "post", "patch", "delete"]

    def create_object(self, data: dict[str, Any]) -> Service:
        return services.service_create(actor=self.actor(), **data)

    def update_object(self, instance: Service, data: dict[str, Any]) -> Service:
        return services.service_update(actor=self.actor(), service=instance, **data)

    def destroy_object(self, instance: Service) -> None:
        services.service_delete(actor=self.actor(), service=instance)


class RequestRecordViewSet(viewsets.ReadOnlyModelViewSet):
    """Request records as routers reported them (newest first). Routers POST batches."""

    queryset = selectors.record_list()
    serializer_class = RequestRecordSerializer
    filterset_class = RecordFilter
    machine_actions = {"create": {Role.ROUTER}}
    action_roles = {"create": Role.ADMIN}

    @extend_schema(request=RecordBatchSerializer, responses={200: IngestResultSerializer})
    def create(self, request: Request) -> Response:
        rows = parse_records(
            request.data, services=selectors.service_ids_by_name(), source=request.user.get_username(), now=timezone.now()
        )
        result = services.records_ingest(rows=rows)
        return Response({"received": result.received, "stored": result.stored, "duplicates": result.duplicates})


class WorkloadProfileViewSet(viewsets.ReadOnlyModelViewSet):
    """Per-window workload profiles of each service."""

    queryset = selectors.profile_list()
    serializer_class = WorkloadProfileSerializer
    filterset_class = ProfileFilter
