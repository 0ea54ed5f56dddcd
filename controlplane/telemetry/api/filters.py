from __future__ import annotations

import django_filters

from controlplane.telemetry.models import CorrectedPhase, NodeSample, PerfCorrection, WorkerSample


class NodeSampleFilter(django_filters.FilterSet):
    node = django_filters.CharFilter(field_name="node__name")
    since = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="lt")

    class Meta:
        model = NodeSample
        fields = ["node", "gpu_index", "since", "until"]


class WorkerSampleFilter(django_filters.FilterSet):
    node = django_filters.CharFilter(field_name="node__name")
    service = django_filters.CharFilter(field_name="service__name")
    since = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="lt")

    class Meta:
        model = WorkerSample
        fields = ["node", "service", "worker_name", "role", "since", "until"]


class PerfCorrectionFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(field_name="model_name")
    phase = django_filters.ChoiceFilter(choices=CorrectedPhase.choices)

    class Meta:
        model = PerfCorrection
        fields = ["model", "tier", "tp", "phase"]
