from __future__ import annotations

from django.contrib import admin

from controlplane.common.admin_site import ReadOnlyAdmin
from controlplane.traffic.models import RequestRecord, Service, WorkloadProfile


@admin.register(Service)
class ServiceAdmin(ReadOnlyAdmin):
    list_display = ["name", "model_name", "ttft_slo_s", "tpot_slo_s", "attainment_target", "auto_approve"]


@admin.register(RequestRecord)
class RequestRecordAdmin(ReadOnlyAdmin):
    list_display = ["id", "service", "arrival_at", "prompt_tokens", "output_tokens", "status"]
    list_filter = ["status", "service"]
    show_full_result_count = False


@admin.register(WorkloadProfile)
class WorkloadProfileAdmin(ReadOnlyAdmin):
    list_display = ["service", "window_start", "request_count", "workload_class", "prefill_share"]
    list_filter = ["workload_class", "service"]
