from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from controlplane.accounts.models import User
from controlplane.common.admin_site import ReadOnlyAdmin
from controlplane.fleet import services
from controlplane.fleet.models import Assignment, GpuTier, Node, Worker


@admin.register(GpuTier)
class GpuTierAdmin(ReadOnlyAdmin):
    _hardware = ("name", "vendor", "bf16_tflops", "fp8_tflops", "hbm_bandwidth_gbps", "memory_gb", "tdp_w", "idle_w",
                 "link_bandwidth_gbps", "link_kind", "source")
    list_display = ("name", "vendor", "bf16_tflops", "fp8_tflops", "hbm_bandwidth_gbps", "memory_gb", "price_usd_per_gpu_h")
    fields = (*_hardware, "price_usd_per_gpu_h")
    readonly_fields = _hardware

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: GpuTier, form: Any, change: bool) -> None:
        assert isinstance(request.user, User)  # the admin site admits only signed-in admins
        services.tier_update(actor=request.user, tier=obj, price_usd_per_gpu_h=obj.price_usd_per_gpu_h)


@admin.register(Node)
class NodeAdmin(ReadOnlyAdmin):
    list_display = ["name", "tier", "gpu_count", "status", "last_heartbeat_at", "generation_applied"]
    list_filter = ["status", "tier"]
    search_fields = ["name"]


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    list_display = ["name", "node", "role", "engine", "tp", "status", "service"]
    list_filter = ["role", "status", "engine"]


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["node", "generation", "plan", "created_at", "applied_at"]
