"""Reads of raw samples shared by the API and the console."""

from __future__ import annotations

from django.db.models import QuerySet

from controlplane.telemetry.models import NodeSample, WorkerSample


def node_sample_list() -> QuerySet[NodeSample]:
    return NodeSample.objects.select_related("node")


def worker_sample_list() -> QuerySet[WorkerSample]:
    return WorkerSample.objects.select_related("node", "service")
