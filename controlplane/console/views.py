"""Server-rendered console pages. Every page is behind login; what a role may do is checked per view."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.views.generic import TemplateView

from controlplane.console import selectors


class OverviewView(LoginRequiredMixin, TemplateView):
    template_name = "console/overview.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["summary"] = selectors.fleet_summary()
        return context
