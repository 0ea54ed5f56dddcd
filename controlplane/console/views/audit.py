"""The audit log, filtered by the API's own filter set (actor, verb prefix, object, since) and paginated."""

from __future__ import annotations

from typing import Any

from controlplane.accounts.api.filters import AuditEventFilter
from controlplane.accounts.selectors import audit_event_list
from controlplane.console.views.base import ConsolePage, paginate


class AuditView(ConsolePage):
    template_name = "console/audit.html"
    nav = "audit"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        filters = AuditEventFilter(self.request.GET or None, queryset=audit_event_list())
        context.update(filters=filters, page=paginate(self.request, filters.qs))
        return context
