from __future__ import annotations

from django.urls import path

from controlplane.common.routers import OptionalSlashRouter
from controlplane.telemetry.api import views

router = OptionalSlashRouter()
router.register("node-samples", views.NodeSampleViewSet, basename="node-sample")
router.register("worker-samples", views.WorkerSampleViewSet, basename="worker-sample")
router.register("perf-corrections", views.PerfCorrectionViewSet, basename="perf-correction")

urlpatterns = [
    path("telemetry/samples", views.SampleBatchView.as_view(), name="telemetry-samples"),
    path("telemetry/summary", views.TelemetrySummaryView.as_view(), name="telemetry-summary"),
    path("telemetry/series", views.TelemetrySeriesView.as_view(), name="telemetry-series"),
    *router.urls,
]
