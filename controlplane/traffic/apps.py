from __future__ import annotations

from django.apps import AppConfig


class TrafficConfig(AppConfig):
    name = "controlplane.traffic"
    label = "traffic"
    verbose_name = "Traffic"
