"""What every console view shares: login, the role check, the capabilities templates read, pagination,
and the JSON answer of the live endpoints."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views import View
from django.views.generic import TemplateView

from controlplane.accounts.models import User
from controlplane.console.permissions import Action, capabilities, require

PAGE_SIZE = 50


class ConsoleMixin(LoginRequiredMixin):
    """Logged in, and allowed `action` (every page needs VIEW; a view that acts names its action, and a
    page whose form writes names the action its POST needs in `post_action`)."""

    action: Action = Action.VIEW
    post_action: Action | None = None
    request: HttpRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.user.is_authenticated:
            require(request.user, Action.VIEW)
            require(request.user, self.action)
            if request.method == "POST" and self.post_action is not None:
                require(request.user, self.post_action)
        return super().dispatch(request, *args, **kwargs)

    def actor(self) -> User:
        user = self.request.user
        assert isinstance(user, User)
        return user


class ConsolePage(ConsoleMixin, TemplateView):
    """A page: its template gets `can` (what the user may do) and `nav` (which tab is lit)."""

    nav = ""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["can"] = capabilities(self.request.user)
        context["nav"] = self.nav
        return context


class ConsoleAction(ConsoleMixin, View):
    """A POST-only endpoint behind a button (CSRF is checked by the middleware)."""

    http_method_names = ["post"]


def paginate(request: HttpRequest, rows: QuerySet[Any], per_page: int = PAGE_SIZE, param: str = "page") -> Page[Any]:
    """The page `?<param>=` asks for (the last one if past the end, the first if not a number).

    `param` names the page number in the query when one page shows two lists.
    """
    page = Paginator(rows, per_page).get_page(request.GET.get(param))
    page.param = param  # type: ignore[attr-defined]  # the pagination template links with it
    return page


def live_response(*, figures: Mapping[str, str] | None = None, html: Mapping[str, str] | None = None,
                  done: bool = False) -> HttpResponse:
    """What a live page fetches: figures (already JSON text, from figures.py) and HTML fragments, by element id.

    The figures are spliced in as they are rather than parsed and dumped again.
    """
    parts = ", ".join(f"{json.dumps(key)}: {value}" for key, value in (figures or {}).items())
    body = f'{{"figures": {{{parts}}}, "html": {json.dumps(dict(html or {}))}, "done": {json.dumps(done)}}}'
    response = HttpResponse(body, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response
