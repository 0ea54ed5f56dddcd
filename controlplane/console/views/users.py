"""Users and tokens, for admins: create users with roles; create tokens (the secret is shown once) and revoke them."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from controlplane.accounts.models import TokenScope
from controlplane.accounts.selectors import token_list, user_list
from controlplane.accounts.services import token_create, token_revoke, user_create
from controlplane.common.errors import ApplicationError
from controlplane.console.forms import TokenCreateForm, UserCreateForm, add_service_errors
from controlplane.console.permissions import Action, capabilities
from controlplane.console.views.base import ConsoleAction, ConsoleMixin, paginate

ROWS_PER_PAGE = 25


def users_page(request: HttpRequest, *, user_form: UserCreateForm | None = None,
               token_form: TokenCreateForm | None = None, status: int = 200, **extra: Any) -> HttpResponse:
    context = {
        "nav": "users", "can": capabilities(request.user),
        "users": paginate(request, user_list(), ROWS_PER_PAGE),
        "tokens": paginate(request, token_list().exclude(scope=TokenScope.NODE), ROWS_PER_PAGE, param="tokens_page"),
        "user_form": user_form or UserCreateForm(), "token_form": token_form or TokenCreateForm(), **extra,
    }
    return render(request, "console/users.html", context, status=status)


class UsersView(ConsoleMixin, View):
    action = Action.MANAGE_USERS

    def get(self, request: HttpRequest) -> HttpResponse:
        return users_page(request)


class UserCreateView(ConsoleAction):
    action = Action.MANAGE_USERS

    def post(self, request: HttpRequest) -> HttpResponse:
        form = UserCreateForm(request.POST)
        if not form.is_valid():
            return users_page(request, user_form=form, status=400)
        try:
            user_create(actor=self.actor(), **form.cleaned_data)
        except ApplicationError as error:
            add_service_errors(form, error)
            return users_page(request, user_form=form, status=400)
        return redirect("console:users")


class TokenCreateView(ConsoleAction):
    action = Action.MANAGE_TOKENS

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TokenCreateForm(request.POST)
        if not form.is_valid():
            return users_page(request, token_form=form, status=400)
        try:
            token, secret = token_create(actor=self.actor(), **form.cleaned_data)
        except ApplicationError as error:
            add_service_errors(form, error)
            return users_page(request, token_form=form, status=400)
        # Shown in this answer only: never stored, never redirected through a cookie or the session.
        response = users_page(request, new_token=token, secret=secret)
        response["Cache-Control"] = "no-store"
        return response


class TokenRevokeView(ConsoleAction):
    action = Action.MANAGE_TOKENS

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        token_revoke(actor=self.actor(), token=get_object_or_404(token_list(), pk=pk))
        return redirect("console:users")
