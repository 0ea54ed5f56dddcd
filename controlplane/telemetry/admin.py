from __future__ import annotations

from django.contrib import admin

from controlplane.common.admin_site import ReadOnlyAdmin
from controlplane.telemetry.models import NodeSample, WorkerSample


@admin.register(NodeSample)
class NodeSampleAdmin(ReadOnlyAdmin):
    list_display = ["node", "ts", "gpu_index", "utilization", "power_w"]
    show_full_result_count = False


@admin.register(WorkerSample)
class WorkerSampleAdmin(ReadOnlyAdmin):
    list_display = ["node", "worker_name", "ts", "requests_running", "requests_waiting", "kv_cache_usage"]
    show_full_result_count = False
