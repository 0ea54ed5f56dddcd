from __future__ import annotations

import django_filters

from controlplane.traffic.models import RequestRecord, WorkloadProfile


class RecordFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__name")
    since = django_filters.IsoDateTimeFilter(field_name="arrival_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="arrival_at", lookup_expr="lt")

    class Meta:
        model = RequestRecord
        fields = ["service", "status", "predicted_class", "since", "until"]


class ProfileFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__name")
    since = django_filters.IsoDateTimeFilter(field_name="window_start", lookup_expr="gte")

    class Meta:
        model = WorkloadProfile
        fields = ["service", "workload_class", "since"]
