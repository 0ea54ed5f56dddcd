from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.accounts.models import ApiToken, Role, TokenScope
from controlplane.common.viewsets import READ_ONLY_METHODS, ServiceModelViewSet
from controlplane.fleet import registration as registration_services
from controlplane.fleet import selectors, services
from controlplane.fleet.api.filters import NodeFilter, WorkerFilter
from controlplane.fleet.api.serializers import (
    GpuTierSerializer,
    HeartbeatAnswerSerializer,
    HeartbeatSerializer,
    NodeRegisteredSerializer,
    NodeRegisterSerializer,
    NodeSerializer,
    WorkerSerializer,
)
from controlplane.fleet.models import GpuTier, Node


class GpuTierViewSet(ServiceModelViewSet):
    """GPU tiers from the catalog. Admins set prices."""

    queryset = selectors.tier_list()
    serializer_class = GpuTierSerializer
    write_role = Role.ADMIN
    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    filterset_fields = ["vendor", "link_kind"]
    http_method_names = [*READ_ONLY_METHODS, "patch"]

    def update_object(self, instance: GpuTier, data: dict[str, Any]) -> GpuTier:
        return services.tier_update(actor=self.actor(), tier=instance, price_usd_per_gpu_h=data["price_usd_per_gpu_h"])


class NodeViewSet(ServiceModelViewSet):
    """GPU nodes. Operators add, edit (drain, cordon) and remove them; agents register and heartbeat."""

    queryset = selectors.node_list()
    serializer_class = NodeSerializer
    filterset_class = NodeFilter
    ordering_fields = ["name", "last_heartbeat_at", "created_at"]
    http_method_names = [*READ_ONLY_METHODS, "post", "patch", "delete"]
    machine_actions = {"register": {Role.AGENT}, "heartbeat": {Role.AGENT}}
    token_scopes = {"register": {TokenScope.BOOTSTRAP}, "heartbeat": {TokenScope.NODE}}

    @extend_schema(request=NodeRegisterSerializer, responses={201: NodeRegisteredSerializer})
    @action(detail=False, methods=["post"])
    def register(self, request: Request) -> Response:
        """An agent trades its bootstrap token for a node token (shown once)."""
        if not isinstance(request.auth, ApiToken) or request.auth.scope != TokenScope.BOOTSTRAP:
            raise PermissionDenied("Agents register with a bootstrap token.")
        body = NodeRegisterSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        registration = registration_services.node_register(bootstrap=request.auth, **body.validated_data)
        return Response(
            {"node": NodeSerializer(registration.node).data, "token": registration.token}, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=HeartbeatSerializer, responses=HeartbeatAnswerSerializer)
    @action(detail=True, methods=["post"])
    def heartbeat(self, request: Request, pk: str | None = None) -> Response:
        """Liveness, the generation the agent runs, and its workers' states. Only the node's own token may send it."""
        node = self.get_object()
        token = request.auth
        if not isinstance(token, ApiToken) or token.scope != TokenScope.NODE or token.node_id != node.pk:
            raise PermissionDenied("Only this node's token may send its heartbeat.")
        body = HeartbeatSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        workers = [
            {**worker, "model_name": worker.pop("model"), "service_id": getattr(worker.pop("service"), "pk", None),
             "plan_id": getattr(worker.pop("plan"), "pk", None)}
            for worker in body.validated_data["workers"]
        ]
        answer = registration_services.node_heartbeat(
            node=node, generation_applied=body.validated_data["generation_applied"],
            agent_version=body.validated_data["agent_version"], workers=workers,
        )
        return Response({"generation_desired": answer.generation_desired, "status": answer.status})

    def create_object(self, data: dict[str, Any]) -> Node:
        data.pop("status", None)
        return services.node_create(actor=self.actor(), **data)

    def update_object(self, instance: Node, data: dict[str, Any]) -> Node:
        return services.node_update(actor=self.actor(), node=instance, **data)

    def destroy_object(self, instance: Node) -> None:
        services.node_delete(actor=self.actor(), node=instance)


class WorkerViewSet(viewsets.ReadOnlyModelViewSet):
    """Engine workers as their nodes report them. Plans and rollouts change them, not edits."""

    queryset = selectors.worker_list()
    serializer_class = WorkerSerializer
    filterset_class = WorkerFilter
