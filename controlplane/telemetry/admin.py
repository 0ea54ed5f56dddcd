from __future__ import annotations

from django.contrib import admin

from controlplane.common.admin_site import ReadOnlyAdmin
from controlplane.telemetry.models import (
    NodeRollup,
    NodeSample,
    PerfCorrection,
    ServiceRollup,
    TierRollup,
    WorkerSample,
)


@admin.register(NodeSample)
class NodeSampleAdmin(ReadOnlyAdmin):
    list_display = ["node", "ts", "gpu_index", "utilization", "power_w"]
    show_full_result_count = False


@admin.register(WorkerSample)
class WorkerSampleAdmin(ReadOnlyAdmin):
    list_display = ["node", "worker_name", "ts", "requests_running", "requests_waiting", "kv_cache_usage"]
    show_full_result_count = False


@admin.register(NodeRollup)
class NodeRollupAdmin(ReadOnlyAdmin):
    list_display = ["node", "resolution_s", "bucket_start", "gpus", "gpu_util_mean", "energy_j", "cost_usd"]
    list_filter = ["resolution_s"]
    show_full_result_count = False


@admin.register(TierRollup)
class TierRollupAdmin(ReadOnlyAdmin):
    list_display = ["tier", "role", "service", "resolution_s", "bucket_start", "gpus", "gpu_util_mean", "energy_j",
                    "cost_usd"]
    list_filter = ["resolution_s", "role", "tier"]
    show_full_result_count = False


@admin.register(ServiceRollup)
class ServiceRollupAdmin(ReadOnlyAdmin):
    list_display = ["service", "resolution_s", "bucket_start", "requests", "requests_timed", "requests_slo_met"]
    list_filter = ["resolution_s"]
    show_full_result_count = False


@admin.register(PerfCorrection)
class PerfCorrectionAdmin(ReadOnlyAdmin):
    list_display = ["model_name", "tier", "tp", "phase", "factor", "samples", "updated_at"]
    list_filter = ["phase", "tier"]
