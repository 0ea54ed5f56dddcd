from __future__ import annotations

from rest_framework import viewsets

from controlplane.telemetry import selectors
from controlplane.telemetry.api.filters import NodeSampleFilter, WorkerSampleFilter
from controlplane.telemetry.api.serializers import NodeSampleSerializer, WorkerSampleSerializer


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
