from __future__ import annotations

from django.apps import AppConfig


class PlanningConfig(AppConfig):
    name = "controlplane.planning"
    label = "planning"
    verbose_name = "Planning"
