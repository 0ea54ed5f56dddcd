from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.accounts.models import ApiToken, Role, TokenScope
from controlplane.telemetry import selectors, services
from controlplane.telemetry.api.filters import NodeSampleFilter, WorkerSampleFilter
from controlplane.telemetry.api.serializers import (
    NodeSampleSerializer,
    SampleBatchSerializer,
    SamplesStoredSerializer,
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
