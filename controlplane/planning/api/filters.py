from __future__ import annotations

import django_filters

from controlplane.planning.models import Plan, Rollout


class PlanFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__name")

    class Meta:
        model = Plan
        fields = ["service", "status", "objective"]


class RolloutFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__name")

    class Meta:
        model = Rollout
        fields = ["service", "status", "strategy", "plan"]
