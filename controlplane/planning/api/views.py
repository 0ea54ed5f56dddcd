from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from controlplane.accounts.models import Role
from controlplane.planning import selectors, services
from controlplane.planning.api.filters import PlanFilter, RolloutFilter
from controlplane.planning.api.serializers import (
    PlanApproveSerializer,
    PlanCreateSerializer,
    PlanDetailSerializer,
    PlanRejectSerializer,
    PlanSerializer,
    RolloutSerializer,
)
from controlplane.planning.planner import PlanParams, lengths_from_rows
from controlplane.planning.rollouts import plan_approve_and_roll_out
from controlplane.traffic.models import Service


class PlanViewSet(viewsets.ReadOnlyModelViewSet):
    """Plans per service. Operators approve or reject drafts."""

    queryset = selectors.plan_list()
    serializer_class = PlanSerializer
    filterset_class = PlanFilter
    ordering_fields = ["created_at", "predicted_cost_usd_per_h"]
    action_roles = {"approve": Role.OPERATOR, "reject": Role.OPERATOR}

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "retrieve":
            return PlanDetailSerializer
        return PlanSerializer

    @extend_schema(request=PlanApproveSerializer, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Approve a draft and start its rollout (strategy and options optional); answers with the rollout."""
        body = PlanApproveSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        rollout = plan_approve_and_roll_out(
            actor=request.user, plan=self.get_object(), strategy=body.validated_data["strategy"],
            options=body.validated_data.get("options"),
        )
        return Response(RolloutSerializer(rollout).data)

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


class ServicePlansView(generics.GenericAPIView):
    """A service's plans (newest first), and a new draft plan for it (operators).

    The workload comes from the service's latest profile (`source: profile`), an uploaded trace
    (`source: trace`, multipart with `trace` and `format`), or an explicit rate and lengths
    (`source: explicit`, the what-if). An infeasible request answers 422 naming the binding constraint.
    """

    serializer_class = PlanSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # the schema generator calls this without a service
            return selectors.plan_list().none()
        return selectors.service_plans(int(self.kwargs["pk"]))

    @extend_schema(responses=PlanSerializer(many=True))
    def get(self, request: Request, pk: str) -> Response:
        get_object_or_404(Service, pk=pk)
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(PlanSerializer(page, many=True).data)

    @extend_schema(
        request={"application/json": PlanCreateSerializer, "multipart/form-data": PlanCreateSerializer},
        responses={201: PlanDetailSerializer, 422: OpenApiResponse(description="No feasible plan: the binding constraint.")},
    )
    def post(self, request: Request, pk: str) -> Response:
        service = get_object_or_404(Service, pk=pk)
        body = PlanCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        with tempfile.TemporaryDirectory(prefix="cleave-plan-") as scratch:
            trace_path = None
            upload = data.get("trace")
            if upload is not None:
                # the readers stream from a path; the upload lives only as long as this request
                trace_path = Path(scratch) / "trace"
                with trace_path.open("wb") as out:
                    for chunk in upload.chunks():
                        out.write(chunk)
            params = PlanParams(
                source=data["source"], objective=data["objective"],
                budget_usd_per_h=data.get("budget_usd_per_h"), power_cap_kw=data.get("power_cap_kw"),
                allowed_tiers=tuple(data["allowed_tiers"]) if data.get("allowed_tiers") else None,
                allowed_tp=tuple(data["allowed_tp"]) if data.get("allowed_tp") else None,
                headroom=data.get("headroom"), rate_rps=data.get("rate_rps"),
                lengths=lengths_from_rows(data["lengths"]) if data.get("lengths") else None,
                prompt_tokens_p50=data.get("prompt_tokens_p50"), prompt_tokens_p90=data.get("prompt_tokens_p90"),
                output_tokens_p50=data.get("output_tokens_p50"), output_tokens_p90=data.get("output_tokens_p90"),
                trace_path=trace_path, trace_format=data.get("format"),
                trace_name=getattr(upload, "name", "") or "",
            )
            plan = services.plan_create(actor=request.user, service=service, params=params)
        return Response(PlanDetailSerializer(plan).data, status=status.HTTP_201_CREATED)
