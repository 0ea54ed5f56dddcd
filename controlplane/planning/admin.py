from __future__ import annotations

from django.contrib import admin

from controlplane.common.admin_site import ReadOnlyAdmin
from controlplane.planning.models import Plan, Rollout, RolloutStep


@admin.register(Plan)
class PlanAdmin(ReadOnlyAdmin):
    list_display = ["id", "service", "status", "objective", "predicted_cost_usd_per_h", "created_at"]
    list_filter = ["status", "service"]


class RolloutStepInline(admin.TabularInline):
    model = RolloutStep
    extra = 0
    can_delete = False
    fields = readonly_fields = ("index", "kind", "status", "attempts", "claimed_at", "finished_at", "detail")


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdmin):
    list_display = ["id", "service", "plan", "strategy", "status", "created_at", "finished_at"]
    list_filter = ["status", "strategy"]
    inlines = [RolloutStepInline]
