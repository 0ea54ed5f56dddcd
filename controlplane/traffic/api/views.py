from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.accounts.models import Role
from controlplane.common.viewsets import READ_ONLY_METHODS, ServiceModelViewSet
from controlplane.traffic import selectors, services
from controlplane.traffic.api.filters import ProfileFilter, RecordFilter
from controlplane.traffic.api.serializers import (
    ClassifierModelSerializer,
    IngestResultSerializer,
    NewServiceApiKeySerializer,
    RecordBatchSerializer,
    RequestRecordSerializer,
    RoutingSerializer,
    ServiceApiKeySerializer,
    ServiceSerializer,
    WorkloadProfileSerializer,
)
from controlplane.traffic.ingest import parse_records
from controlplane.traffic.models import Service, ServiceApiKey
from controlplane.traffic.training import classifier_activate


class ServiceViewSet(ServiceModelViewSet):
    """Served models with their SLOs and rebalancing policy. Operators manage them and their client keys."""

    queryset = selectors.service_list()
    serializer_class = ServiceSerializer
    filterset_fields = ["model_name", "auto_approve"]
    http_method_names = [*READ_ONLY_METHODS, "post", "patch", "delete"]
    machine_actions = {"routing": {Role.ROUTER, Role.AGENT}}

    @extend_schema(responses=RoutingSerializer)
    @action(detail=True, methods=["get"])
    def routing(self, request: Request, pk: str | None = None) -> Response:
        """The active routing plan and the digests of the service's client keys, with an ETag (304 when unchanged)."""
        document = selectors.routing_document(self.get_object())
        etag = f'"{document["etag"]}"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return Response(document, headers={"ETag": etag})

    @extend_schema(methods=["GET"], responses=ServiceApiKeySerializer(many=True))
    @extend_schema(methods=["POST"], request=ServiceApiKeySerializer, responses={201: NewServiceApiKeySerializer})
    @action(detail=True, methods=["get", "post"], url_path="api-keys")
    def api_keys(self, request: Request, pk: str | None = None) -> Response:
        """Client keys of the service. Creating one shows the key once."""
        service = self.get_object()
        if request.method == "GET":
            return Response(ServiceApiKeySerializer(service.api_keys.all(), many=True).data)
        body = ServiceApiKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key, raw = services.api_key_create(actor=self.actor(), service=service, name=body.validated_data["name"])
        return Response({**ServiceApiKeySerializer(key).data, "key": raw}, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ServiceApiKeySerializer)
    @action(detail=True, methods=["post"], url_path=r"api-keys/(?P<key_id>[0-9]+)/revoke")
    def revoke_api_key(self, request: Request, pk: str | None = None, key_id: str | None = None) -> Response:
        key = get_object_or_404(ServiceApiKey, pk=key_id, service=self.get_object())
        return Response(ServiceApiKeySerializer(services.api_key_revoke(actor=self.actor(), key=key)).data)

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
    # Routers send records: stand-alone ones with a router token, ones an agent runs with its node's token.
    machine_actions = {"create": {Role.ROUTER, Role.AGENT}}
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


class ClassifierModelViewSet(viewsets.ReadOnlyModelViewSet):
    """Classifier versions with their metrics. Operators activate one."""

    queryset = selectors.classifier_list()
    serializer_class = ClassifierModelSerializer
    filterset_fields = ["kind", "is_active"]
    action_roles = {"activate": Role.OPERATOR}

    @extend_schema(request=None, responses=ClassifierModelSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str | None = None) -> Response:
        classifier = classifier_activate(actor=self.request.user, classifier=self.get_object(), reason="operator")
        return Response(ClassifierModelSerializer(classifier).data)
