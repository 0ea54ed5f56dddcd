from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.accounts.models import Role
from controlplane.planning import selectors, services
from controlplane.planning.api.filters import PlanFilter, RolloutFilter
from controlplane.planning.api.serializers import PlanRejectSerializer, PlanSerializer, RolloutSerializer


class PlanViewSet(viewsets.ReadOnlyModelViewSet):
    """Plans per service. Operators approve or reject drafts."""

    queryset = selectors.plan_list()
    serializer_class = PlanSerializer
    filterset_class = PlanFilter
    ordering_fields = ["created_at", "predicted_cost_usd_per_h"]
    action_roles = {"approve": Role.OPERATOR, "reject": Role.OPERATOR}

    @extend_schema(request=None, responses=PlanSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        plan = services.plan_approve(actor=request.user, plan=self.get_object())
        return Response(PlanSerializer(plan).data)

    @extend_schema(request=PlanRejectSerializer, responses=PlanSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        body = PlanRejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        plan = services.plan_reject(
            actor=request.user, plan=self.get_object(), reason=body.validated_data.get("reason", "")
        )
        return Response(PlanSerializer(plan).data)


class RolloutViewSet(viewsets.ReadOnlyModelViewSet):
    """Rollouts and their persisted steps."""

    queryset = selectors.rollout_list()
    serializer_class = RolloutSerializer
    filterset_class = RolloutFilter
