from __future__ import annotations

import django_filters

from controlplane.fleet.models import Node, Worker


class NodeFilter(django_filters.FilterSet):
    tier = django_filters.CharFilter(field_name="tier__name")

    class Meta:
        model = Node
        fields = ["tier", "status"]


class WorkerFilter(django_filters.FilterSet):
    node = django_filters.CharFilter(field_name="node__name")
    service = django_filters.CharFilter(field_name="service__name")

    class Meta:
        model = Worker
        fields = ["node", "service", "role", "status", "engine", "plan"]
