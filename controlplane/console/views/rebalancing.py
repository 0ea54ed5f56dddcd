"""Rebalancing: each service's policy (operators edit it) and what the scheduled job proposed, and why."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from controlplane.common.errors import ApplicationError
from controlplane.console import selectors
from controlplane.console.forms import PolicyForm, add_service_errors
from controlplane.console.permissions import Action, capabilities
from controlplane.console.views.base import ConsoleMixin, paginate
from controlplane.traffic.models import Service
from controlplane.traffic.services import service_update

SERVICES_PER_PAGE = 25
EVENTS_PER_PAGE = 25


class RebalancingView(ConsoleMixin, View):
    post_action = Action.EDIT_POLICY

    def _page(self, request: HttpRequest, *, bound: PolicyForm | None = None, status: int = 200) -> HttpResponse:
        services = paginate(request, Service.objects.order_by("name"), SERVICES_PER_PAGE)
        forms = [
            (service, bound if bound is not None and bound.instance.pk == service.pk
             else PolicyForm(instance=service, prefix=f"s{service.pk}"))
            for service in services.object_list
        ]
        context = {
            "nav": "rebalancing", "can": capabilities(request.user), "services": services, "forms": forms,
            "decisions": paginate(request, selectors.rebalance_decisions(), EVENTS_PER_PAGE, param="decisions_page"),
        }
        return render(request, "console/rebalancing.html", context, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._page(request)

    def post(self, request: HttpRequest) -> HttpResponse:
        service = get_object_or_404(Service, pk=request.POST.get("service"))
        form = PolicyForm(request.POST, instance=Service.objects.get(pk=service.pk), prefix=f"s{service.pk}")
        if not form.is_valid():
            return self._page(request, bound=form, status=400)
        changes: dict[str, Any] = {name: form.cleaned_data[name] for name in PolicyForm.Meta.fields}
        try:
            service_update(actor=self.actor(), service=service, **changes)
        except ApplicationError as error:
            add_service_errors(form, error)
            return self._page(request, bound=form, status=400)
        return redirect(f"{request.path}?{request.GET.urlencode()}" if request.GET else request.path)
