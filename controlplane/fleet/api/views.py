from __future__ import annotations

from typing import Any

from rest_framework import viewsets

from controlplane.accounts.models import Role
from controlplane.common.viewsets import READ_ONLY_METHODS, ServiceModelViewSet
from controlplane.fleet import selectors, services
from controlplane.fleet.api.filters import NodeFilter, WorkerFilter
from controlplane.fleet.api.serializers import GpuTierSerializer, NodeSerializer, WorkerSerializer
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
    """GPU nodes. Operators add, edit (drain, cordon) and remove them."""

    queryset = selectors.node_list()
    serializer_class = NodeSerializer
    filterset_class = NodeFilter
    ordering_fields = ["name", "last_heartbeat_at", "created_at"]
    http_method_names = [*READ_ONLY_METHODS, "post", "patch", "delete"]

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
