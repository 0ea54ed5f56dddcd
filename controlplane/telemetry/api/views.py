from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.accounts.models import ApiToken, Role, TokenScope
from controlplane.telemetry import metrics, selectors, services
from controlplane.telemetry.api.filters import NodeSampleFilter, PerfCorrectionFilter, WorkerSampleFilter
from controlplane.telemetry.api.serializers import (
    NodeSampleSerializer,
    PerfCorrectionSerializer,
    SampleBatchSerializer,
    SamplesStoredSerializer,
    SeriesQuerySerializer,
    SeriesSerializer,
    SummaryQuerySerializer,
    SummarySerializer,
    WorkerSampleSerializer,
)
from controlplane.telemetry.ingest import parse_samples
from controlplane.traffic.selectors import service_ids_by_name


class NodeSampleViewSet(viewsets.ReadOnlyModelViewSet):
    """Per-GPU readings (utilization, power, memory), newest first."""

    queryset = selectors.node_sample_list()
    serializer_class = NodeSampleSerializer
    filterset_class = NodeSampleFilter


class WorkerSampleViewSet(viewsets.ReadOnlyModelViewSet):
    """Per-worker engine metrics, newest first."""

    queryset = selectors.worker_sample_list()
    serializer_class = WorkerSampleSerializer
    filterset_class = WorkerSampleFilter


class PerfCorrectionViewSet(viewsets.ReadOnlyModelViewSet):
    """The perf model's corrections from live telemetry, per model, tier, TP and phase: measured over
    predicted step times, bounded and smoothed; the planner times workers with them. Viewers and up."""

    queryset = selectors.perf_correction_list()
    serializer_class = PerfCorrectionSerializer
    filterset_class = PerfCorrectionFilter


class SampleBatchView(APIView):
    """Agents send batches of GPU readings and worker metrics for their own node."""

    machine_actions = {"post": {Role.AGENT}}
    action_roles = {"post": Role.ADMIN}

    @extend_schema(request=SampleBatchSerializer, responses={200: SamplesStoredSerializer})
    def post(self, request: Request) -> Response:
        token = request.auth
        if not isinstance(token, ApiToken) or token.scope != TokenScope.NODE or token.node_id is None:
            raise PermissionDenied("Samples are sent with a node token.")
        node_rows, worker_rows = parse_samples(request.data, node_id=token.node_id, services=service_ids_by_name())
        stored = services.samples_ingest(node_rows=node_rows, worker_rows=worker_rows)
        return Response({
            "node_samples_received": len(node_rows), "node_samples_stored": stored.node_samples,
            "worker_samples_received": len(worker_rows), "worker_samples_stored": stored.worker_samples,
        })


class TelemetrySummaryView(APIView):
    """Cost and power now; energy, utilization, tokens, $/Mtok, tokens/J and SLO attainment over a window;
    the saving against the active plans' colocated baselines. Viewers and up."""

    @extend_schema(parameters=[SummaryQuerySerializer], responses=SummarySerializer)
    def get(self, request: Request) -> Response:
        query = SummaryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        summary = selectors.telemetry_summary(
            window_name=query.validated_data["window"], service=query.validated_data.get("service"), now=timezone.now()
        )
        return Response(SummarySerializer(summary).data)


class TelemetrySeriesView(APIView):
    """One metric over a window, a point per roll-up bucket (minutes for 1h and 1d, hours for 1w), ready for a
    plotly trace; narrowed by tier, role and service. Viewers and up."""

    @extend_schema(parameters=[SeriesQuerySerializer], responses=SeriesSerializer)
    def get(self, request: Request) -> Response:
        query = SeriesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        tier = data.get("tier")
        series = selectors.telemetry_series(
            metric=data["metric"], window_name=data["window"], now=timezone.now(), service=data.get("service"),
            tier=tier.name if tier else None, role=data.get("role"),
        )
        return Response(SeriesSerializer(series).data)


class MetricsView(APIView):
    """The control plane's gauges in Prometheus text. A viewer's token or session, or anyone where
    METRICS_ALLOW_ANONYMOUS is on."""

    def get_permissions(self) -> list[Any]:
        if settings.METRICS_ALLOW_ANONYMOUS:
            return [AllowAny()]
        return super().get_permissions()

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # Scrapers ask for text/plain or OpenMetrics, which no DRF renderer offers; the body is ours anyway.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: Request) -> HttpResponse:
        body, content_type = metrics.exposition(request.headers.get("Accept", ""))
        return HttpResponse(body, content_type=content_type)
